// The process's real pino logger (lib/log.ts) writing into a file of a temp dir, at `level`, for
// tests that check what is logged and how often; restore() puts the level back and removes the dir.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logToFile, rootLogger } from '../../lib/log.js';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface LogFile {
  /** The lines logged so far whose msg matches. */
  lines(msg: RegExp): LogLine[];
  restore(): void;
}

export function captureLog(level = 'info'): LogFile {
  const dir = mkdtempSync(join(tmpdir(), 'lw-log-'));
  const file = join(dir, 'linewatch.log');
  const previousLevel = rootLogger.level;
  logToFile(file);
  rootLogger.level = level;
  return {
    lines: (msg) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as LogLine)
        .filter((line) => msg.test(line.msg)),
    restore() {
      rootLogger.level = previousLevel;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
