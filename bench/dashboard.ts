// Dashboard benchmark: how fast the live view takes bus messages (vs. a bare subscriber in the
// same run), and what SSE clients receive while devices publish flat out — updates per second
// per client (coalesced to ≤ 10), bytes per second, and the delay from a publish to the
// browser-side event. Loopback only, bounded in time.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brokerConfigSchema, startBroker, type LinewatchBroker } from '../broker/index.js';
import { DashboardServer } from '../dashboard/server/index.js';
import type { Report } from './report.js';
import { roleGrants } from '../config/services.js';

const DEVICES = 15;
const PUBLISH_MS = 4000;

function telemetry(i: number, seq: number): string {
  return JSON.stringify({ ts: Date.now(), seq, values: { speed: 40 + (seq % 10), motorTemp: 60 + (i % 7), load: 0.5 } });
}

/** Publishes telemetry round-robin over DEVICES devices for `ms`; returns how many were sent. */
async function flood(broker: LinewatchBroker, ms: number, onEach?: (n: number) => Promise<void> | void): Promise<number> {
  const end = Date.now() + ms;
  let n = 0;
  while (Date.now() < end) {
    for (let k = 0; k < 100; k++, n++) await broker.bus.publish(`lw/A/dev-${n % DEVICES}/telemetry`, telemetry(n % DEVICES, n));
    await onEach?.(n);
    // Let timers and sockets run, as they do between network packets (in-process publishes alone never yield).
    await new Promise((r) => setImmediate(r));
  }
  return n;
}

interface ClientStats {
  events: number;
  bytes: number;
  delays: number[];
}

function sseClient(url: string, stats: ClientStats, signal: AbortSignal): Promise<void> {
  return (async () => {
    const res = await fetch(url, { signal });
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        stats.bytes += chunk.length;
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!block.startsWith('event: update')) continue;
          stats.events++;
          // Markers are states whose reason carries the publish time.
          for (const m of block.matchAll(/"reason":"marker-(\d+)"/g)) stats.delays.push(Date.now() - Number(m[1]));
        }
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    }
  })();
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function run(report: Report): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-bench-dash-'));
  const broker = await startBroker(brokerConfigSchema.parse({ persistence: 'memory', port: 0, wsPort: null, open: true, devicesFile: join(dir, 'devices.json') }), { roles: roleGrants() });
  try {
    // 1. Intake: a bare counting subscriber vs. the dashboard's live view (parse, validate, merge).
    let counted = 0;
    const unsubscribe = await broker.bus.subscribe('lw/#', () => {
      counted++;
    });
    const t0 = performance.now();
    await flood(broker, PUBLISH_MS);
    const bareRate = counted / ((performance.now() - t0) / 1000);
    await unsubscribe();

    const dashboard = new DashboardServer({ bus: broker.bus, config: { host: '127.0.0.1', port: 0, token: null } });
    await dashboard.start();
    const before = dashboard.view.counters.messages;
    const t1 = performance.now();
    await flood(broker, PUBLISH_MS);
    const viewRate = (dashboard.view.counters.messages - before) / ((performance.now() - t1) / 1000);
    report.add({
      title: 'Dashboard: live view intake (in-process bus)',
      note: `Telemetry from ${DEVICES} devices published back to back on the InProcessBus for ${PUBLISH_MS / 1000} s, counted at the subscriber. Reference: a subscriber that only counts, same run.`,
      columns: ['subscriber', 'messages/s'],
      rows: [
        ['bare counting subscriber (reference)', Math.round(bareRate)],
        ['dashboard LineView (JSON parse + zod + merge)', Math.round(viewRate)],
      ],
    });

    // 2. Fan-out to SSE clients while devices publish flat out.
    const rows: (string | number)[][] = [];
    for (const clients of [1, 10, 50]) {
      const controller = new AbortController();
      const stats: ClientStats[] = Array.from({ length: clients }, () => ({ events: 0, bytes: 0, delays: [] }));
      const readers = stats.map((s) => sseClient(`${dashboard.url}/events`, s, controller.signal));
      while ((dashboard.counters().sse_clients ?? 0) < clients) await new Promise((r) => setTimeout(r, 20));
      const start = performance.now();
      let markers = 0;
      const published = await flood(broker, PUBLISH_MS, async (n) => {
        if (n % 2000 === 0) {
          markers++;
          await broker.bus.publish('lw/A/marker/state', JSON.stringify({ ts: Date.now(), seq: markers, state: 'RUNNING', reason: `marker-${Date.now()}` }));
        }
      });
      await new Promise((r) => setTimeout(r, 300)); // let the last tick arrive
      const seconds = (performance.now() - start) / 1000;
      controller.abort();
      await Promise.allSettled(readers);
      const delays = stats.flatMap((s) => s.delays);
      const events = stats.reduce((a, s) => a + s.events, 0) / clients / seconds;
      const bytes = stats.reduce((a, s) => a + s.bytes, 0) / clients / seconds;
      rows.push([clients, Math.round(published / seconds), events.toFixed(1), Math.round(bytes / 1024), percentile(delays, 50), percentile(delays, 99), dashboard.counters().sse_clients_dropped_slow ?? 0]);
    }
    report.add({
      title: 'Dashboard: server-sent events under load',
      note: `While ${DEVICES} devices' telemetry is published flat out on the bus, each client (in the same process) reads /events. Updates are coalesced to at most 10/s per client; delay is from publishing a marker state to the client parsing it.`,
      columns: ['SSE clients', 'bus messages/s', 'updates/s per client', 'KiB/s per client', 'delay p50 (ms)', 'delay p99 (ms)', 'clients dropped'],
      rows,
    });
    await dashboard.stop();
  } finally {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
