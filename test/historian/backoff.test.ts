// The historian's retry delays (lib/backoff.ts, equal jitter; its unit test is test/lib/backoff.test.ts)
// holding against an InfluxDB that fails every write while a backlog arrives.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Historian } from '../../historian/index.js';
import { historianConfigSchema } from '../../historian/config.js';
import { classify } from '../../historian/influx.js';
import { sleep, waitFor } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

// Recent enough for any retention policy.
const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;

describe('backoff', () => {
  it('classifies network errors as retryable with the cause in the message', () => {
    const failure = classify(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }));
    expect(failure).toEqual({ kind: 'retry', message: 'InfluxDB is unreachable: ECONNREFUSED connect ECONNREFUSED 127.0.0.1:9' });
  });
});

/**
 * A stand-in InfluxDB over real HTTP for what a real influxd cannot be made to do: answer 503
 * to every write. /ping answers 204 and /query an empty result, as influxd does; /write answers
 * 503 until `recover()`, then 204, keeping what it got.
 */
async function startFailingInflux(): Promise<{ url: string; writes: () => number; stored: string[]; recover(): void; close(): Promise<void> }> {
  let writes = 0;
  let failing = true;
  const stored: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/write') {
        writes++;
        if (failing) {
          res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"service unavailable"}');
          return;
        }
        stored.push(...Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean));
        res.writeHead(204).end();
      } else if (path === '/ping') {
        res.writeHead(204).end();
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"results":[{"statement_id":0}]}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    writes: () => writes,
    stored,
    recover: () => (failing = false),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('backoff against an InfluxDB that answers 503', () => {
  let broker: TestBroker;
  let influx: Awaited<ReturnType<typeof startFailingInflux>>;
  let dir: string;

  beforeAll(async () => {
    [broker, influx] = await Promise.all([startTestBroker({ wsPort: null }), startFailingInflux()]);
    dir = mkdtempSync(join(tmpdir(), 'lw-backoff-'));
  });
  afterAll(async () => {
    await Promise.all([broker?.stop(), influx?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sends one write per backoff interval however much arrives meanwhile, then drains once InfluxDB answers', async () => {
    // retryInitialMs = retryMaxMs: every interval is at least half of it (equal jitter), so over
    // `elapsed` ms at most elapsed / (retryMaxMs / 2) intervals can have passed.
    const retryMaxMs = 200;
    const config = historianConfigSchema.parse({ influxUrl: influx.url, database: 'backoff', setupDatabase: false, spoolDir: join(dir, 'spool'), batchSize: 10, flushIntervalMs: 10, retryInitialMs: retryMaxMs, retryMaxMs });
    const historian = new Historian({ bus: broker.broker.bus, config, dataDir: dir });
    await historian.start();
    try {
      const publish = (seq: number): Promise<void> => broker.broker.bus.publish('lw/B/d1/telemetry', JSON.stringify({ ts: T0 + seq, seq, values: { v: seq } }), { qos: 1 });
      await publish(0);
      await waitFor(() => influx.writes() > 0, 10_000, 'the first write attempt');
      const startedAt = Date.now();
      const before = influx.writes();
      // A backlog of 200 full batches arrives while InfluxDB keeps failing.
      const TOTAL = 2001;
      for (let seq = 1; seq < TOTAL; seq += 100) {
        await Promise.all(Array.from({ length: 100 }, (_, k) => publish(seq + k)));
        await sleep(20);
      }
      await waitFor(() => Date.now() - startedAt >= 6 * retryMaxMs, 10_000, 'six backoff intervals');
      const requests = influx.writes() - before;
      const intervals = Math.floor((Date.now() - startedAt) / (retryMaxMs / 2));
      expect(historian.counters().spooled).toBe(TOTAL);
      expect(requests).toBeLessThanOrEqual(intervals + 1);
      influx.recover();
      await historian.flush(20_000);
      expect(new Set(influx.stored.map((line) => /seq=(\d+)i/.exec(line)?.[1])).size).toBe(TOTAL);
      expect(historian.counters()).toMatchObject({ written: TOTAL, influx_up: 1 });
    } finally {
      await historian.stop();
    }
  });
});
