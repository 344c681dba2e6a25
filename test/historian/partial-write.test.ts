// Counting per point against a real influxd: InfluxDB 1.x stores the good points of a batch and
// answers 400 "partial write: …" for the bad ones (unparseable lines, points beyond the retention
// policy). The historian must count what was stored as written and only the bad points as
// rejected — each once — and move on. The bad points are built below the contract (straight into
// the spool), since the contract keeps such timestamps out. A batch of events and period rows is two
// requests (raw and the period policy): their refusals add up the same way.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Historian } from '../../historian/index.js';
import { historianConfigSchema } from '../../historian/config.js';
import { toPoint } from '../../historian/points.js';
import { Spool } from '../../historian/spool.js';
import { startHistorianRig, type HistorianRig } from './rig.js';

// Recent enough for the raw retention policy (7 days).
const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
const DAY = 86_400_000;

function telemetryLine(seq: number, ts = T0 + seq): string {
  const point = toPoint('lw/PW/d1/telemetry', JSON.stringify({ ts, seq, values: { v: seq } }));
  if (!point.ok) throw new Error(point.error);
  return point.line;
}

describe('counting per point on a partial write', () => {
  let rig: HistorianRig;

  beforeAll(async () => {
    rig = await startHistorianRig('lw-partial-');
  });
  afterAll(async () => {
    await rig?.stop();
  });

  async function replay(database: string, lines: string[]): Promise<Historian> {
    const spoolDir = join(rig.dir, database);
    const spool = new Spool({ dir: spoolDir, maxBytes: 64 * 1024 * 1024 });
    spool.open();
    spool.appendMany(lines);
    spool.close();
    const config = historianConfigSchema.parse({ influxUrl: rig.influx.url, database, spoolDir, batchSize: 5000, flushIntervalMs: 50 });
    const historian = new Historian({ bus: rig.broker.broker.bus, config, dataDir: rig.dir });
    await historian.start();
    await historian.flush(20_000);
    await historian.stop();
    return historian;
  }

  async function storedCount(database: string): Promise<number> {
    const [result] = await rig.influx.query('SELECT count("v") FROM telemetry', database);
    return Number(result?.series?.[0]?.values[0]?.[1] ?? 0);
  }

  it('one point with a timestamp out of InfluxDB’s range among 500: 500 written, 1 rejected', async () => {
    const lines = Array.from({ length: 500 }, (_, seq) => telemetryLine(seq));
    lines.splice(250, 0, telemetryLine(9999).replace(/ \d+$/, ' 9007199254740991000000'));
    const historian = await replay('pw_range', lines);
    expect(await storedCount('pw_range')).toBe(500);
    // replayed: every record recovered from the earlier run, written or refused.
    expect(historian.counters()).toMatchObject({ written: 500, replayed: 501, dropped_rejected: 1 });
  });

  it('an unparseable point and one beyond the retention policy in one batch (InfluxDB reports only one): 300 written, 2 rejected', async () => {
    const lines = Array.from({ length: 300 }, (_, seq) => telemetryLine(seq));
    lines.splice(100, 0, telemetryLine(9998).replace(/ \d+$/, ' 9007199254740991000000'));
    lines.splice(200, 0, telemetryLine(9999, T0 - 30 * DAY));
    const historian = await replay('pw_mixed', lines);
    expect(await storedCount('pw_mixed')).toBe(300);
    expect(historian.counters()).toMatchObject({ written: 300, dropped_rejected: 2 });
  });

  it('a batch of events and period rows, one bad point in each: two requests, every good point stored in its policy, 2 rejected', async () => {
    const stop = (n: number): string => {
      const point = toPoint('lw/PW/downtime', JSON.stringify({ ts: T0 + n * 1000 + 500, scope: 'device', device: `d${n}`, state: 'FAULT', start: T0 + n * 1000, end: T0 + n * 1000 + 500, durationMs: 500, plannedMs: 0, micro: true, open: false }));
      if (!point.ok) throw new Error(point.error);
      return point.line;
    };
    const lines = Array.from({ length: 200 }, (_, seq) => telemetryLine(seq));
    for (let n = 0; n < 20; n++) lines.splice(n * 10, 0, stop(n));
    lines.splice(50, 0, telemetryLine(9998).replace(/ \d+$/, ' 9007199254740991000000'));
    lines.splice(150, 0, stop(99).replace(/ \d+$/, ' 9007199254740991000000'));
    const historian = await replay('pw_routed', lines);
    expect(await storedCount('pw_routed')).toBe(200);
    const [periods] = await rig.influx.query('SELECT count("durationMs") FROM "periods"."downtime"', 'pw_routed');
    expect(Number(periods?.series?.[0]?.values[0]?.[1])).toBe(20);
    const [raw] = await rig.influx.query('SELECT count("durationMs") FROM "raw"."downtime"', 'pw_routed');
    expect(raw?.series ?? []).toEqual([]);
    expect(historian.counters()).toMatchObject({ written: 220, replayed: 222, dropped_rejected: 2 });
  });
});
