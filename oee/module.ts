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
    publishes: [{ filter: topics.summary('+'), ...DELIVERY.summary, why: "each line's OEE, speed and strategy every oee.publishIntervalMs" }],
    subscribes: OEE_SUBSCRIPTIONS.map((filter) => ({ filter, qos: 1 as const, why: 'the device events and command outcomes its figures are made of' })),
  },
  healthPort: 9186,
  create: (options) => new OeeService(options),
} satisfies ServiceModule<OeeConfig, OeeServiceOptions>;
