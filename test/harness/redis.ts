// A real redis-server for tests (Debian's `redis-server`): a free loopback port, a temp dir, AOF on,
// no RDB snapshots (broker/redis-server.ts writes its config), removed on stop(). One per test file
// (beforeAll/afterAll) is enough: it starts in a few milliseconds, and each file has its own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startManagedRedis, type ManagedRedis } from '../../broker/redis-server.js';
import { withTimeout } from '../../lib/wait.js';

export interface TestRedis {
  /** e.g. redis://127.0.0.1:40123 — stays the same across restart(). */
  url: string;
  port: number;
  /** The directory redis.conf, appendonlydir/ and redis.log are in. */
  dir: string;
  pid(): number;
  /** Sends `signal` (default SIGKILL) and waits (bounded) until redis-server has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts redis-server again on the same port and files (stopping it first if it runs). */
  restart(): Promise<void>;
  /** Runs one command on a short-lived connection (FLUSHALL, KEYS, DBSIZE…) and returns its answer. */
  command(name: string, ...args: (string | number)[]): Promise<unknown>;
  /** Stops redis-server and removes the temp dir. */
  stop(): Promise<void>;
}

export async function startTestRedis(): Promise<TestRedis> {
  const root = mkdtempSync(join(tmpdir(), 'lw-redis-'));
  const dir = join(root, 'redis');
  let current: ManagedRedis;
  try {
    current = await startManagedRedis({ dir });
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  const { url, port } = current;
  return {
    url,
    port,
    dir,
    pid: () => current.pid,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      current.kill(signal);
      await withTimeout(current.exited, 10_000, `redis-server (pid ${current.pid}) to exit after ${signal}`);
    },
    async restart() {
      await current.stop();
      current = await startManagedRedis({ dir, port });
    },
    async command(name: string, ...args: (string | number)[]) {
      const connection = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await withTimeout(connection.connect(), 5_000, `a connection to the test redis-server on port ${port}`);
        return await withTimeout(connection.call(name, ...args), 10_000, `redis ${name}`);
      } finally {
        connection.disconnect();
      }
    },
    async stop() {
      await current.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
