// A `linewatch broker` process from the built CLI (dist/), for restart and cluster tests: started
// with the given flags on a free port (--port 0, no WebSocket, /healthz on a free port, open mode
// unless the flags say otherwise), its address read from what it prints; killed or stopped by the
// test, and killed in any case by stop().
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withTimeout } from '../../lib/wait.js';

const BIN = fileURLToPath(new URL('../../bin/linewatch.js', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface BrokerProcess {
  /** The MQTT port it printed. */
  port: number;
  url: string;
  pid: number;
  /** Everything it wrote so far (stdout and stderr). */
  output(): string;
  /** Sends `signal` (default SIGKILL) and waits (bounded) until it has exited; resolves with its exit code (null after a signal). */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `linewatch broker --port 0 --no-ws-port --health-port 0 --open ...extraArgs` in `cwd`. */
export async function startBrokerProcess(extraArgs: string[], cwd: string): Promise<BrokerProcess> {
  if (!existsSync(BUILT)) throw new Error('dist/ is missing: run `npm run build` before these tests (npm test does)');
  const child: ChildProcess = spawn(process.execPath, [BIN, 'broker', '--port', '0', '--no-ws-port', '--health-port', '0', '--open', ...extraArgs], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINEWATCH_LOG_LEVEL: 'info' } });
  let out = '';
  child.stdout!.on('data', (data: Buffer) => (out += data.toString()));
  child.stderr!.on('data', (data: Buffer) => (out += data.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      const check = (): void => {
        const match = /linewatch broker: mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (match) resolve(Number(match[1]));
      };
      child.stdout!.on('data', check);
      void exited.then((code) => reject(new Error(`linewatch broker exited with ${code} during start: ${out}`)));
    }),
    30_000,
    '`linewatch broker` to print its address',
  ).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid!,
    output: () => out,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return withTimeout(exited, 20_000, `linewatch broker (pid ${child.pid}) to exit after ${signal}`);
    },
  };
}
