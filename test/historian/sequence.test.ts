// The historian's seq_* counters over the real broker: a device that restarts, the retained state
// of its previous run arriving late, state overtaking telemetry and a redelivery count nothing
// missing; a real loss counts exactly what was lost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historianConfigSchema } from '../../historian/config.js';
import { Historian } from '../../historian/index.js';
import { startHistorianRig, type HistorianRig } from './rig.js';

const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;

describe('historian seq counters', () => {
  let rig: HistorianRig;
  let historian: Historian;

  beforeAll(async () => {
    rig = await startHistorianRig('lw-sequence-');
    const config = historianConfigSchema.parse({ influxUrl: rig.influx.url, database: 'seq', spoolDir: `${rig.dir}/spool`, flushIntervalMs: 50 });
    historian = new Historian({ bus: rig.broker.broker.bus, config, dataDir: rig.dir });
    await historian.start();
  });
  afterAll(async () => {
    await historian?.stop();
    await rig?.stop();
  });

  const telemetry = (device: string, seq: number, ts: number): Promise<void> =>
    rig.broker.broker.bus.publish(`lw/A/${device}/telemetry`, JSON.stringify({ ts, seq, values: { v: seq } }), { qos: 1 });
  const state = (device: string, seq: number, ts: number): Promise<void> =>
    rig.broker.broker.bus.publish(`lw/A/${device}/state`, JSON.stringify({ ts, seq, state: 'RUNNING' }), { qos: 1 });

  it('counts what was lost, not restarts, strays, reorders or redeliveries', async () => {
    // Run 1 of d1: seqs 0..199, state 100 overtaking telemetry 99.
    for (let seq = 0; seq < 200; seq++) {
      if (seq === 99) continue;
      if (seq === 100) await state('d1', 100, T0 + 100);
      else await telemetry('d1', seq, T0 + seq);
      if (seq === 100) await telemetry('d1', 99, T0 + 99);
    }
    await telemetry('d1', 150, T0 + 150); // redelivered
    // d1 restarts at seq 0; its run-1 retained state arrives after the new run's first message.
    await telemetry('d1', 0, T0 + 10_000);
    await state('d1', 100, T0 + 100);
    for (let seq = 1; seq < 50; seq++) await telemetry('d1', seq, T0 + 10_000 + seq);
    // d2 loses 20..29.
    for (let seq = 0; seq < 40; seq++) if (seq < 20 || seq >= 30) await telemetry('d2', seq, T0 + seq);
    // d3 has a stray from a second counter among its own.
    for (let seq = 0; seq < 20; seq++) {
      await telemetry('d3', seq, T0 + seq);
      if (seq === 9) await telemetry('d3', 5000, T0 + seq);
    }
    await historian.flush();
    // Duplicates: the redelivered 150 and the retained state 100 (the same event again).
    expect(historian.counters()).toMatchObject({ seq_missing: 10, seq_gaps: 2, seq_duplicates: 2, seq_reorders: 1, seq_resets: 1, seq_stale: 1 });
  });
});
