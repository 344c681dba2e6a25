// A real influxd for tests: free port, temp dir, removed on stop(). Start one per test file
// (beforeAll/afterAll), not one per test — influxd takes a second or two to start on 2 cores.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startManagedInfluxd, type ManagedInfluxd } from '../../historian/influxd.js';

export interface TestInflux {
  /** Base URL, e.g. http://127.0.0.1:40123 — stays the same across restart(). */
  url: string;
  port: number;
  dataDir: string;
  /** PID of the current influxd process. */
  pid(): number;
  /** Sends `signal` (default SIGKILL) and waits (bounded) until influxd has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts influxd again on the same port and data dir (stopping it first if it runs). */
  restart(): Promise<void>;
  /** Stops influxd and removes the temp dir. */
  stop(): Promise<void>;
  /** Runs an InfluxQL query (GET /query) and returns the JSON `results`. */
  query(q: string, database?: string): Promise<InfluxQueryResult[]>;
}

export interface InfluxQueryResult {
  statement_id: number;
  error?: string;
  series?: { name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }[];
}

export async function startTestInflux(): Promise<TestInflux> {
  const dir = mkdtempSync(join(tmpdir(), 'lw-influx-'));
  const dataDir = join(dir, 'influxd');
  let current: ManagedInfluxd;
  try {
    current = await startManagedInfluxd({ dataDir });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const { url, port } = current;
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    current.kill(signal);
    await Promise.race([current.exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
  };
  return {
    url,
    port,
    dataDir,
    pid: () => current.pid,
    kill,
    async restart() {
      await current.stop();
      current = await startManagedInfluxd({ dataDir, port });
    },
    async stop() {
      await current.stop();
      rmSync(dir, { recursive: true, force: true });
    },
    async query(q: string, database?: string) {
      const params = new URLSearchParams({ q, epoch: 'ms' });
      if (database) params.set('db', database);
      const res = await fetch(`${url}/query`, { method: 'POST', body: params, signal: AbortSignal.timeout(20_000) });
      const body = (await res.json()) as { results?: InfluxQueryResult[]; error?: string };
      if (!res.ok || body.error) throw new Error(`query ${q} failed: ${res.status} ${body.error ?? ''}`);
      return body.results ?? [];
    },
  };
}
