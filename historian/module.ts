// The historian as a linewatch service module (lib/service-module.ts): a pure sink.
import { topics } from '../contracts/topics.js';
import type { ServiceModule } from '../lib/service-module.js';
import { historianConfigSchema, type HistorianConfig } from './config.js';
import { Historian, type HistorianOptions, type HistorianService } from './index.js';
import { HistorianThread } from './thread.js';

export const historianModule = {
  name: 'historian' as const,
  configSchema: historianConfigSchema,
  role: 'historian',
  topics: {
    publishes: [],
    // QoS 1 on a persistent session: the broker keeps what arrives while the historian is away.
    subscribes: [{ filter: topics.all, qos: 1, why: 'every event, command, outcome, alert and summary goes to InfluxDB' }],
  },
  healthPort: 9185,
  // historian.thread "worker": the same Historian in a worker thread, on a bridge to this bus (historian/thread.ts).
  create: (options): HistorianService => (options.config.thread === 'worker' ? new HistorianThread(options) : new Historian(options)),
} satisfies ServiceModule<HistorianConfig, HistorianOptions>;
