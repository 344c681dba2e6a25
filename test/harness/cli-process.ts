// A standalone linewatch command (`node dist/cli/main.js historian …`) as a child process for
// tests: started and waited for (bounded) until it prints that it runs, with the URL of its
// /healthz and /metrics (`--health-port 0`), killed by PID at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { withTimeout } from '../../lib/wait.js';

export const CLI = resolve('dist/cli/main.js');

export interface CliProcess {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** Its /healthz and /metrics base URL, from its "health: … at URL" line. */
  healthUrl: string;
  /** Resolves with its exit code once it has exited. */
  exited: Promise<number | null>;
  /** Sends `signal` (SIGKILL by default) and waits (bounded) until it has exited. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The children started by startCliProcess and not yet exited, for an afterAll that kills them. */
export const runningChildren = new Set<ChildProcess>();

/** Runs `linewatch ARGS` until it prints `ready`; rejects (with what it printed) if it exits first. */
export async function startCliProcess(args: string[], ready: string, options: { logLevel?: string; timeoutMs?: number } = {}): Promise<CliProcess> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before this test`);
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINEWATCH_LOG_LEVEL: process.env.LW_CHILD_LOG ?? options.logLevel ?? 'error' } });
  runningChildren.add(child);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  void exited.then(() => runningChildren.delete(child));
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  await withTimeout(
    new Promise<void>((ok, fail) => {
      const check = (): void => {
        if (output.includes(ready)) ok();
      };
      child.stdout!.on('data', check);
      child.stderr!.on('data', check);
      void exited.then((code) => fail(new Error(`linewatch ${args[0]} exited with ${code} before it said "${ready}": ${output}`)));
    }),
    options.timeoutMs ?? 30_000,
    `linewatch ${args.join(' ')} to say "${ready}"`,
  );
  const healthUrl = /health: \/healthz and \/metrics at (http:\/\/\S+)/.exec(output)?.[1] ?? '';
  return {
    child,
    output: () => output,
    healthUrl,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      child.kill(signal);
      return withTimeout(exited, 15_000, `linewatch ${args[0]} to exit after ${signal}`);
    },
  };
}

/** Runs `linewatch ARGS` to its end (bounded) and resolves with its exit code and what it printed. */
export async function runCli(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINEWATCH_LOG_LEVEL: 'silent' } });
  runningChildren.add(child);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await withTimeout(new Promise<number | null>((r) => child.once('exit', r)), timeoutMs, `linewatch ${args.join(' ')} to end`).finally(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    runningChildren.delete(child);
  });
  return { code, output };
}
