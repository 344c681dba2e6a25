// The worked example of docs/oee.md through the whole path against a real broker and a real
// influxd: the OEE service publishes each hour's and the shift's figures and every stop, the
// historian stores them (measurements oee, downtime, in the period policy "periods"), and a restart of the OEE service in the
// middle of the shift (during the break, a stop open across it) changes none of the figures.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historianConfigSchema } from '../../historian/config.js';
import { Historian } from '../../historian/index.js';
import { waitFor } from '../../lib/wait.js';
import { OeeService, oeeConfigSchema } from '../../oee/index.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';
import { at, EXAMPLE_CONFIG, EXAMPLE_EVENTS, EXPECTED, RESTART_AFTER, type ExampleEvent } from './worked-example.js';

const LINE = 'W';
const DATABASE = 'oeeperiods';

describe('OEE per period and downtime in InfluxDB', () => {
  let broker: TestBroker;
  let influx: TestInflux;
  let historian: Historian;
  let dir: string;
  let seq = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lw-oee-periods-'));
    [broker, influx] = await Promise.all([startTestBroker({ wsPort: null }), startTestInflux()]);
    const config = historianConfigSchema.parse({ influxUrl: influx.url, database: DATABASE, spoolDir: join(dir, 'spool'), flushIntervalMs: 50 });
    historian = new Historian({ bus: broker.broker.bus, config, dataDir: dir, drainTimeoutMs: 2000 });
    await historian.start();
  });
  afterAll(async () => {
    await historian?.stop();
    await Promise.all([broker?.stop(), influx?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function oeeService(): OeeService {
    // A long publish interval: the rounds that count are the ones stop() publishes.
    const config = oeeConfigSchema.parse({ ...EXAMPLE_CONFIG, publishIntervalMs: 3_600_000 });
    return new OeeService({ bus: broker.broker.bus, config, stateFile: join(dir, 'oee-state.json') });
  }

  async function replay(events: readonly ExampleEvent[]): Promise<void> {
    for (const event of events) {
      const topic = `lw/${LINE}/st-1/${event.kind}`;
      const payload = event.kind === 'state'
        ? { ts: event.ts, seq: seq++, state: event.state, type: 'station', ...(event.reason ? { reason: event.reason } : {}) }
        : { ts: event.ts, seq: seq++, type: 'station', values: { goodCount: event.good, scrapCount: event.scrap } };
      await broker.broker.bus.publish(topic, JSON.stringify(payload), { qos: 1, retain: event.kind === 'state' });
    }
  }

  async function rows(q: string): Promise<Array<Record<string, unknown>>> {
    const [result] = await influx.query(q, DATABASE);
    if (result?.error) throw new Error(result.error);
    return (result?.series ?? []).flatMap((series) => series.values.map((values) => ({ ...series.tags, ...Object.fromEntries(series.columns.map((column, i) => [column, values[i]])) })));
  }

  it('stores the shift and hour figures and one row per stop, the same across a restart mid-shift', async () => {
    const first = oeeService();
    await first.start();
    await replay(EXAMPLE_EVENTS.slice(0, RESTART_AFTER));
    await waitFor(() => first.figuresOf(LINE)?.now() === EXAMPLE_EVENTS[RESTART_AFTER - 1]!.ts, 10_000, 'the first OEE service to see the events before the restart');
    await first.stop();

    const second = oeeService();
    await second.start();
    await replay(EXAMPLE_EVENTS.slice(RESTART_AFTER));
    await waitFor(() => second.figuresOf(LINE)?.now() === at('14:00:00'), 10_000, 'the second OEE service to see the rest of the shift');
    await second.stop();

    const shift = await waitFor(async () => (await rows(`SELECT * FROM "periods"."oee" WHERE "line" = 'W' AND "period" = 'shift' AND "scope" = 'line' AND time = ${at('06:00:00')}ms`)).find((row) => row.complete === 1), 15_000, 'the complete shift row in InfluxDB');
    // The historian has written the last round (the shift row is its last point of the line): the rest is there too.
    expect(shift).toMatchObject({ shift: 'early', complete: 1, plannedMs: EXPECTED.shift.plannedMs, runMs: EXPECTED.shift.runMs, microStops: 1, microStopMs: 20_000, plannedStopMs: EXPECTED.shift.plannedStopMs, down_FAULT: EXPECTED.shift.downMs.FAULT, down_STARVED: EXPECTED.shift.downMs.STARVED, down_BLOCKED: 0, goodCount: 351, scrapCount: 9 });
    expect(shift.availability).toBeCloseTo(EXPECTED.shift.availability, 12);
    expect(shift.performance).toBeCloseTo(EXPECTED.shift.performance, 12);
    expect(shift.quality).toBeCloseTo(EXPECTED.shift.quality, 12);
    expect(shift.oee).toBeCloseTo(EXPECTED.shift.oee, 12);

    const station = (await rows(`SELECT * FROM "periods"."oee" WHERE "line" = 'W' AND "period" = 'shift' AND "scope" = 'station' AND "device" = 'st-1'`))[0];
    expect(station?.oee).toBeCloseTo(EXPECTED.shift.oee, 12);

    const hours = await rows(`SELECT * FROM "periods"."oee" WHERE "line" = 'W' AND "period" = 'hour' AND "scope" = 'line' AND time >= ${at('06:00:00')}ms AND time < ${at('14:00:00')}ms`);
    expect(hours).toHaveLength(8);
    const hour = (hh: string) => hours.find((row) => row.time === at(`${hh}:00:00`));
    expect(hour('07')).toMatchObject({ plannedMs: EXPECTED.hour07.plannedMs, runMs: EXPECTED.hour07.runMs, down_FAULT: EXPECTED.hour07.downMs.FAULT, performance: 1, complete: 1 });
    expect(hour('07')?.availability).toBeCloseTo(EXPECTED.hour07.availability, 12);
    expect(hour('07')?.quality).toBeCloseTo(EXPECTED.hour07.quality, 12);
    expect(hour('10')).toMatchObject({ plannedMs: EXPECTED.hour10.plannedMs, runMs: EXPECTED.hour10.runMs, plannedStopMs: EXPECTED.hour10.plannedStopMs, availability: 1, quality: 1 });
    expect(hour('10')?.performance).toBeCloseTo(EXPECTED.hour10.performance, 12);

    const stops = await rows(`SELECT * FROM "periods"."downtime" WHERE "line" = 'W' AND "scope" = 'device'`);
    expect(stops.map((row) => ({ state: row.state, reason: row.reason, start: row.start, end: row.end, plannedMs: row.plannedMs, micro: row.micro === 1 }))).toEqual(EXPECTED.stops);
    expect(stops.every((row) => row.open === 0 && row.device === 'st-1')).toBe(true);
    // The break's stop was open across the restart: still one row, with its whole length.
    expect(stops.filter((row) => row.state === 'IDLE')).toHaveLength(1);
    expect(await rows(`SELECT count("durationMs") FROM "periods"."downtime" WHERE "line" = 'W' AND "scope" = 'line'`)).toEqual([expect.objectContaining({ count: EXPECTED.stops.length })]);
  });
});
