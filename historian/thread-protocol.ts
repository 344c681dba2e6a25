// What the main thread and the historian's worker thread say to each other (historian/thread.ts,
// historian/thread-entry.ts); the bus itself crosses on its own port (bus/thread-bridge.ts).
import type { MessagePort } from 'node:worker_threads';
import type { Counters, Health, ServiceInfo } from '../lib/service.js';
import type { HistorianConfig } from './config.js';
import type { QualityCounts } from './data-quality.js';

/** How often the worker sends its counters, health and data quality: what the main thread answers with meanwhile. */
export const SNAPSHOT_EVERY_MS = 500;

/** The worker's workerData. */
export interface HistorianThreadData {
  config: HistorianConfig;
  dataDir: string;
  influxUrl: string | undefined;
  drainTimeoutMs: number | undefined;
  worker: string | undefined;
  /** The ThreadBus end of the bus (serveBus holds the other). */
  busPort: MessagePort;
}

export type ToHistorianThread = { op: 'start' } | { op: 'stop' } | { op: 'influxBack' };

export type FromHistorianThread =
  | { op: 'loaded' }
  | { op: 'started' }
  | { op: 'stopped' }
  /** A start or a stop that threw: `during` names which. */
  | { op: 'failed'; during: 'started' | 'stopped'; name: string; message: string }
  | { op: 'log'; line: string; level: number }
  | {
      op: 'snapshot';
      counters: Counters;
      gauges: string[];
      health: Health;
      info: ServiceInfo;
      quality: { line: string; device: string; totals: QualityCounts }[];
      influxUrl: string | undefined;
    };
