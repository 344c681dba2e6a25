// Broker store benchmark (issue 13): the broker load of bench/broker.ts (100 devices publishing
// QoS 1 telemetry, a TCP subscriber in the load-generator process) with the subscriber's session
// persistent (clean=false), so every message goes through the store: queued, given its messageId,
// cleared at the PUBACK. broker.persistence memory vs disk on one node, side by side.
//   LINEWATCH_BENCH_PERSISTENCE_SECONDS=1 shortens each rate point (default 3 s).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addBenchAccounts, loadRun, startNodeBroker, type System } from './broker.js';
import type { Report } from './report.js';

const RATES = [5_000, 10_000, 20_000, 40_000];
const SECONDS = Number(process.env.LINEWATCH_BENCH_PERSISTENCE_SECONDS ?? 3);
/** Columns of loadRun's rows this table shows: delivered/s (4), missing (5), duplicates (6), p50 (7), p99 (8), broker CPU (9). */
const DELIVERED = 4;
const CPU = 9;

export async function run(report: Report): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-bench-persistence-'));
  try {
    const devicesFile = join(dir, 'devices.json');
    await addBenchAccounts(devicesFile);
    const systems: System[] = (['memory', 'disk'] as const).map((persistence) => ({
      name: `linewatch, persistence: ${persistence}`,
      label: `linewatch (${persistence})`,
      start: () => startNodeBroker(['linewatch', devicesFile, 'tcp', persistence, join(dir, persistence)]),
      tcpSubscriber: true,
      persistentSubscriber: true,
    }));
    const rows: (string | number)[][] = [];
    for (const system of systems) {
      for (const row of await loadRun(system, dir, RATES, SECONDS)) {
        const delivered = Number(row[DELIVERED]);
        const cpuShare = Number.parseFloat(String(row[CPU])) / 100;
        // CPU seconds per second over messages per second: the broker's CPU per delivered message.
        const cpuPerMessage = delivered > 0 ? ((cpuShare / delivered) * 1e6).toFixed(1) : '—';
        rows.push([row[0]!, row[1]!, row[DELIVERED]!, row[5]!, row[6]!, row[7]!, row[8]!, row[CPU]!, cpuPerMessage]);
      }
    }
    report.add({
      title: 'Broker store: QoS 1 through a persistent (clean=false) TCP subscriber, memory vs disk',
      note:
        `100 devices publish QoS 1, 64-byte telemetry for ${SECONDS} s per rate (bench/broker.ts's load generator, after its warm-up at the lowest rate); the subscriber's session is persistent, ` +
        'so each message is queued in the store, updated with its messageId and cleared at its PUBACK. CPU is the broker process (100% = one core); ' +
        'CPU per message = broker CPU / delivered per second.',
      columns: ['store', 'offered/s', 'delivered/s', 'missing', 'duplicates', 'p50 ms', 'p99 ms', 'broker CPU', 'broker CPU µs per delivered message'],
      rows,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
