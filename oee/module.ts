// The OEE service as a linewatch service module (lib/service-module.ts).
import { DELIVERY, topics } from '../contracts/topics.js';
import type { ServiceModule } from '../lib/service-module.js';
import { oeeConfigSchema, type OeeConfig } from './config.js';
import { OEE_SUBSCRIPTIONS, OeeService, type OeeServiceOptions } from './service.js';

export const oeeModule = {
  name: 'oee' as const,
  configSchema: oeeConfigSchema,
  role: 'oee',
  topics: {
    publishes: [
      { filter: topics.summary('+'), ...DELIVERY.summary, why: "each line's current shift OEE so far, speed and strategy every oee.publishIntervalMs" },
      { filter: topics.oeePeriod('+'), ...DELIVERY.oeePeriod, why: "each hour's, shift's and day's OEE of the line and its stations, while it can change" },
      { filter: topics.downtime('+'), ...DELIVERY.downtime, why: 'each stop interval of the line and its devices, while open and when it ends' },
    ],
    subscribes: OEE_SUBSCRIPTIONS.map((filter) => ({ filter, qos: 1 as const, why: 'the device events and command outcomes its figures are made of' })),
  },
  healthPort: 9186,
  create: (options) => new OeeService(options),
} satisfies ServiceModule<OeeConfig, OeeServiceOptions>;
