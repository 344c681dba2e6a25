// `linewatch broker` as a real child process (the built CLI, dist/), for restart and cluster tests:
// on a free port (--port 0, no WebSocket, /healthz on a free port), its address read from what it
// prints; with a data dir that outlives it (passed in the flags), so a test can kill it (SIGTERM or
// SIGKILL) and start another on the same data dir. Not in open mode unless the flags say --open.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withTimeout } from '../../lib/wait.js';

const BIN = fileURLToPath(new URL('../../bin/linewatch.js', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
/** How long a broker may take to print its address (a busy machine, LevelDB opening, a managed redis-server starting). */
const START_WAIT_MS = 30_000;
const EXIT_WAIT_MS = 20_000;

export interface BrokerProcess {
  /** The MQTT port it printed. */
  readonly port: number;
  readonly url: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** What it printed on stdout and stderr so far. */
  output(): string;
  /** Sends `signal` (default SIGKILL) and resolves with the exit code (null when a signal ended it) once it exited. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `linewatch broker --port 0 --no-ws-port --health-port 0 …args` (in `cwd`, default this process's) and resolves once it printed its MQTT address. */
export async function startBrokerProcess(args: string[], cwd?: string): Promise<BrokerProcess> {
  if (!existsSync(BUILT)) throw new Error('dist/ is missing: run `npm run build` before these tests (npm test does)');
  const child = spawn(process.execPath, [BIN, 'broker', '--port', '0', '--no-ws-port', '--health-port', '0', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINEWATCH_LOG_LEVEL: 'info' } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      const look = (): void => {
        const match = /linewatch broker: mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (match) resolve(Number(match[1]));
      };
      child.stdout!.on('data', look);
      void exited.then((code) => reject(new Error(`linewatch broker exited with ${code} during start: ${out}`)));
    }),
    START_WAIT_MS,
    '`linewatch broker` to print its address',
  ).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid!,
    child,
    output: () => out,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return withTimeout(exited, EXIT_WAIT_MS, `linewatch broker (pid ${child.pid}) to exit after ${signal}`);
    },
  };
}
