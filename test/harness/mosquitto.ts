// A real Mosquitto broker for tests (Debian's `mosquitto`, 2.0.11 here: MQTT 5, shared
// subscriptions): a free port on loopback, its own config and log in a temp dir, removed on stop.
// Mosquitto 2.0 takes `listener 0` as a unix socket, so the port is picked here (a free one, tried
// again if another process takes it first).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findExecutable, searchPath } from '../../lib/find-executable.js';
import { waitFor, withTimeout } from '../../lib/wait.js';

export interface TestMosquitto {
  /** mqtt://127.0.0.1:PORT */
  url: string;
  port: number;
  /** What Mosquitto logged so far (its log file). */
  log(): string;
  /** Stops Mosquitto (SIGTERM, then SIGKILL) and removes the temp dir. */
  stop(): Promise<void>;
}

export interface TestMosquittoOptions {
  /** Extra lines for mosquitto.conf. */
  config?: string[];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startTestMosquitto(options: TestMosquittoOptions = {}): Promise<TestMosquitto> {
  const binary = findExecutable('mosquitto', searchPath(['/usr/sbin']));
  if (!binary) throw new Error('mosquitto is not installed: sudo apt-get install mosquitto (the tests of shared subscriptions need a real MQTT 5 broker)');
  const dir = mkdtempSync(join(tmpdir(), 'lw-mosquitto-'));
  const logFile = join(dir, 'mosquitto.log');
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const configFile = join(dir, 'mosquitto.conf');
    writeFileSync(configFile, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', `log_dest file ${logFile}`, 'log_type error', 'log_type warning', 'log_type notice', ...(options.config ?? [])].join('\n') + '\n');
    const child: ChildProcess = spawn(binary, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let gone = false;
    void exited.then(() => (gone = true));
    const up = await waitFor(async () => gone || (await accepts(port)), 10_000, `mosquitto to listen on 127.0.0.1:${port}`).catch((err: Error) => err);
    if (up === true && !gone) {
      return {
        url: `mqtt://127.0.0.1:${port}`,
        port,
        log: () => readFileSafe(logFile),
        async stop() {
          child.kill('SIGTERM');
          const stopped = await withTimeout(exited, 5000, 'mosquitto to stop').catch(() => undefined);
          if (stopped === undefined) {
            child.kill('SIGKILL');
            await withTimeout(exited, 5000, 'mosquitto to die');
          }
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    child.kill('SIGKILL');
    await withTimeout(exited, 5000, 'a mosquitto that did not start to exit');
    // Another process took the port between our look and mosquitto's bind: try another.
    if (!/Address already in use/.test(stderr + (gone ? readFileSafe(logFile) : ''))) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`mosquitto did not start: ${up instanceof Error ? up.message : 'it exited'}: ${stderr}${readFileSafe(logFile)}`);
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error('mosquitto did not start: every free port picked was taken before it could bind');
}

function readFileSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
