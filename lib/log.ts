// One pino logger for the whole process; each service takes a child named after itself.
// Log lines go to stdout, unless logToFile() sends them to a file (`linewatch up`, whose
// terminal shows its own lines and the status line) — then warnings and errors still reach stderr.
import { pino, type Logger } from 'pino';

export type { Logger };

const level = process.env.LINEWATCH_LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info');

type Sink = (line: string, level: number) => void;
let sink: Sink = (line) => process.stdout.write(line);

/** A destination that forwards to the current sink; pino fills in `lastLevel` (pino.symbols.needsMetadataGsym). */
const destination = {
  [pino.symbols.needsMetadataGsym]: true,
  lastLevel: 0,
  write(line: string): void {
    sink(line, this.lastLevel);
  },
};

export const rootLogger: Logger = pino({ level, base: { app: 'linewatch' } }, destination);

export function logger(service: string): Logger {
  return rootLogger.child({ service });
}

/** Appends every log line to `file` from now on; warnings and errors are also written to stderr. */
export function logToFile(file: string): void {
  const stream = pino.destination({ dest: file, mkdir: true, sync: true });
  const warn = pino.levels.values.warn!;
  sink = (line, lineLevel) => {
    stream.write(line);
    if (lineLevel >= warn) process.stderr.write(line);
  };
}

/** Hands every log line to `forward` instead (a worker thread gives its lines to the main thread's sink: historian/thread.ts). */
export function forwardLogs(forward: (line: string, level: number) => void): void {
  sink = forward;
}

/** Writes a line another thread logged, through this thread's sink (the file of `linewatch up`, or stdout). */
export function writeForwardedLog(line: string, level: number): void {
  sink(line, level);
}
