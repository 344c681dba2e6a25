// Debian's mosquitto_pub / mosquitto_sub as child processes, every run bounded in time.
import { spawn } from 'node:child_process';
import { clientIdFor } from '../../contracts/client-id.js';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args`; kills it (by PID) after `timeoutMs` and resolves with what it printed. */
export function run(command: string, args: string[], timeoutMs = 10_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${err.message} (is it installed? apt-get install mosquitto-clients)`, { cause: err }));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface Credentials {
  username: string;
  password: string;
}

/** Credentials and a client id (given, else one the broker accepts for the account: USERNAME:mosq-…). */
function auth(c: Credentials | undefined, id: string | undefined): string[] {
  const clientId = id ?? (c ? clientIdFor(c.username, `mosq-${Math.random().toString(36).slice(2, 8)}`) : undefined);
  return [...(c ? ['-u', c.username, '-P', c.password] : []), ...(clientId ? ['-i', clientId] : [])];
}

export function mosquittoPub(port: number, topic: string, message: string, opts: { qos?: 0 | 1 | 2; retain?: boolean; credentials?: Credentials; id?: string } = {}): Promise<RunResult> {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-t', topic, '-m', message, '-q', String(opts.qos ?? 0), ...auth(opts.credentials, opts.id)];
  if (opts.retain) args.push('-r');
  return run('mosquitto_pub', args);
}

/**
 * Starts mosquitto_sub for `count` messages (at most `seconds` s) and resolves with the process's
 * result once it exits; `ready` resolves when it has subscribed (it prints nothing before, so we
 * wait for the broker to count its subscription through `isSubscribed`).
 */
export function mosquittoSub(port: number, filter: string, opts: { count: number; seconds?: number; qos?: 0 | 1 | 2; credentials?: Credentials; id?: string; persistent?: boolean }): Promise<RunResult> {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-t', filter, '-C', String(opts.count), '-W', String(opts.seconds ?? 10), '-q', String(opts.qos ?? 0), '-v', ...auth(opts.credentials, opts.id)];
  if (opts.persistent) args.push('-c'); // clean session off: the broker keeps the session and queues for it
  return run('mosquitto_sub', args, ((opts.seconds ?? 10) + 5) * 1000);
}
