// `rules backtest` benchmark (issue 12): a day of the demo line (simulators/model.ts in simulated
// time, ≈ 10 device events/s, written to a managed influxd as the historian writes them:
// historian/points.ts, batches of 5,000) replayed through the example rules, against the time
// InfluxDB takes to hand over the same range: one plain query per measurement (chunked, the body
// read to the end; one after the other, and the three at once as the backtest reads them), and the
// backtest's own reads without the replay.
// `BENCH_BACKTEST_HOURS` shortens the day for a quick check.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toPoint } from '../historian/points.js';
import { startManagedInfluxd } from '../historian/influxd.js';
import { topicOf, topics } from '../contracts/topics.js';
import { rootLogger } from '../lib/log.js';
import { LineModel } from '../simulators/model.js';
import { loadDemoScenario } from '../simulators/scenario.js';
import { runBacktest } from '../workbench/backtest/backtest.js';
import { DEFAULT_PAGE_ROWS, HistoryReader } from '../workbench/backtest/history.js';
import type { Report } from './report.js';

const HOURS = Number(process.env.BENCH_BACKTEST_HOURS ?? 24);
const DATABASE = 'linewatch';
const LINE = 'A';
const STEP_MS = 100;
const BATCH = 5000;
const EXAMPLES = fileURLToPath(new URL('../../rules/examples', import.meta.url));

/** The demo line for `spanMs` of simulated time, written straight to InfluxDB; returns the events written. */
async function writeDay(url: string, start: number, spanMs: number): Promise<{ events: number; devices: number }> {
  const model = new LineModel({ seed: 1, scenario: loadDemoScenario(), startTime: start });
  let batch: string[] = [];
  let written = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const res = await fetch(`${url}/write?db=${DATABASE}&precision=n`, { method: 'POST', body: batch.join('\n') });
    if (res.status !== 204) throw new Error(`write failed: ${res.status} ${await res.text()}`);
    written += batch.length;
    batch = [];
  };
  for (let t = 0; t < spanMs; t += STEP_MS) {
    for (const event of model.advance(STEP_MS)) {
      let topic: string;
      let payload: { ts: number };
      if (event.type === 'message') {
        topic = topicOf(event.kind, LINE, event.device);
        payload = event.payload as { ts: number };
      } else if (event.type === 'offline' || event.type === 'online') {
        topic = topics.status(LINE, event.device);
        payload = { ts: model.now(), status: event.type, type: model.deviceType(event.device) } as { ts: number };
      } else continue;
      // The range is [start, start + spanMs): the last step's events at its end are not in it.
      if (payload.ts >= start + spanMs) continue;
      const point = toPoint(topic, JSON.stringify(payload));
      if (!point.ok) throw new Error(`the model made an event the historian refuses: ${point.error}`);
      batch.push(point.line);
      if (batch.length >= BATCH) await flush();
    }
  }
  await flush();
  return { events: written, devices: model.deviceIds().length };
}

/** CPU seconds (user + system) influxd has used so far, from /proc (clock ticks of 10 ms, as on Linux by default). */
function influxdCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  // After the command: state is field 3, utime 14 and stime 15 (proc(5)); here 0-based from the state.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** What `work` cost: wall time, this process's CPU and influxd's CPU (s). */
async function measured<T>(pid: number, work: () => Promise<T>): Promise<{ value: T; wall: number; cpu: number; influxdCpu: number }> {
  const cpuBefore = process.cpuUsage();
  const influxdBefore = influxdCpuSeconds(pid);
  const began = performance.now();
  const value = await work();
  const wall = (performance.now() - began) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return { value, wall, cpu: (cpu.user + cpu.system) / 1e6, influxdCpu: influxdCpuSeconds(pid) - influxdBefore };
}

/** One plain query per device-event measurement for the range, streamed (chunked) and read to the end: what InfluxDB alone takes (`together`: the three at once). */
async function rawQuery(url: string, from: number, to: number, together = false): Promise<number> {
  const one = async (measurement: string): Promise<number> => {
    const params = new URLSearchParams({ db: DATABASE, epoch: 'ms', chunked: 'true', chunk_size: String(DEFAULT_PAGE_ROWS), q: `SELECT * FROM "${measurement}" WHERE "line" = '${LINE}' AND time >= ${from}ms AND time < ${to}ms` });
    const res = await fetch(`${url}/query`, { method: 'POST', body: params });
    return (await res.arrayBuffer()).byteLength;
  };
  const measurements = ['state', 'telemetry', 'status'];
  if (together) return (await Promise.all(measurements.map(one))).reduce((sum, bytes) => sum + bytes, 0);
  let bytes = 0;
  for (const measurement of measurements) bytes += await one(measurement);
  return bytes;
}

export async function run(report: Report): Promise<void> {
  rootLogger.level = 'error';
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-bench-backtest-'));
  const influx = await startManagedInfluxd({ dataDir: join(dir, 'influxd') });
  try {
    await fetch(`${influx.url}/query`, { method: 'POST', body: new URLSearchParams({ q: `CREATE DATABASE "${DATABASE}"` }) });
    const spanMs = HOURS * 3_600_000;
    // Whole minutes, ending an hour ago: inside any retention policy, never in the future.
    const from = Math.floor((Date.now() - spanMs - 3_600_000) / 60_000) * 60_000;
    const to = from + spanMs;
    const writeBegan = performance.now();
    const { events, devices } = await writeDay(influx.url, from, spanMs);
    const writeMs = performance.now() - writeBegan;
    console.log(`wrote ${events} events (${HOURS} h of the demo line) in ${(writeMs / 1000).toFixed(1)} s`);

    const raw = await measured(influx.pid, () => rawQuery(influx.url, from, to));
    const rawTogether = await measured(influx.pid, () => rawQuery(influx.url, from, to, true));
    const reader = new HistoryReader({ url: influx.url, database: DATABASE, line: LINE });
    const reads = await measured(influx.pid, async () => {
      let read = 0;
      for await (const page of reader.events(from, to)) read += page.length;
      return read;
    });
    reader.close();

    let peakHeap = 0;
    const sampler = setInterval(() => (peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)), 100);
    const heapBefore = process.memoryUsage().heapUsed;
    let backtest: Awaited<ReturnType<typeof measured<Awaited<ReturnType<typeof runBacktest>>>>>;
    try {
      backtest = await measured(influx.pid, () => runBacktest({ dir: EXAMPLES, influx: { url: influx.url, database: DATABASE, line: LINE }, from, to }));
    } finally {
      clearInterval(sampler);
    }
    const result = backtest.value;
    if (result.events !== events || reads.value !== events) throw new Error(`the backtest replayed ${result.events} events and the reader read ${reads.value}, ${events} were written`);
    const row = (what: string, m: { wall: number; cpu: number; influxdCpu: number }, pages: number | string, heap: string): (string | number)[] => [what, events, m.wall.toFixed(1), Math.round(events / m.wall), m.cpu.toFixed(1), m.influxdCpu.toFixed(1), pages, heap];
    report.add({
      title: `Rules backtest: ${HOURS} h of the demo line from InfluxDB`,
      note:
        `The demo line (${devices} devices, demo scenario, seed 1) for ${HOURS} h of simulated time, ${events} device events (≈ ${(events / (spanMs / 1000)).toFixed(1)}/s), written to a managed influxd as the historian writes them, then backtested with rules/examples (one chunked stream per measurement, ${DEFAULT_PAGE_ROWS} rows a chunk, merged in device-time order and replayed in pages of as many rows). ` +
        "References in the same run: one chunked query per measurement for the whole range, body read to the end (InfluxDB alone), one after the other and the three at once; the backtest's reads alone (its three streams, parsing, merging, rebuilding and checking the messages; no replay). CPU: this process and influxd, user + system, during that row (the wall time also counts waiting for a core on a shared machine). Peak heap is sampled every 100 ms during the backtest, above the heap before it. Target: a day in ≤ 30 s.",
      columns: ['what', 'events', 'wall s', 'events/s', 'CPU s (node)', 'CPU s (influxd)', 'pages', 'peak heap over start MiB'],
      rows: [
        row('raw InfluxDB query (3 chunked queries, one after the other)', raw, '—', '—'),
        row('raw InfluxDB query (3 chunked queries at once)', rawTogether, '—', '—'),
        row('backtest reads alone (3 streams, merged)', reads, reader.stats.pages, '—'),
        row('backtest (reads + replay + compare)', backtest, result.pages.pages, ((peakHeap - heapBefore) / 2 ** 20).toFixed(0)),
      ],
    });
  } finally {
    await influx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
