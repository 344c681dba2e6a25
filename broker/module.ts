// The broker as a linewatch service module (lib/service-module.ts). It has no account (role
// null): what it publishes it publishes itself, and the role table it enforces is given to it,
// derived from every other module's declared topics (config/services.ts, roleGrants).
import { topics } from '../contracts/topics.js';
import type { ServiceModule } from '../lib/service-module.js';
import { brokerConfigSchema, type BrokerConfig } from './config.js';
import { BrokerService, type BrokerOptions } from './service.js';

export interface BrokerModuleOptions extends BrokerOptions {
  config: BrokerConfig;
}

export const brokerModule = {
  name: 'broker' as const,
  configSchema: brokerConfigSchema,
  role: null,
  topics: {
    publishes: [
      { filter: `${topics.deadLetters.slice(0, -1)}+`, qos: 1, retain: false, why: 'a payload it refused, with the reason (broker/publish-validation.ts)' },
      { filter: '$SYS/linewatch/#', qos: 0, retain: false, why: 'its stats every broker.statsIntervalMs (broker/stats-publisher.ts)' },
    ],
    subscribes: [],
  },
  healthPort: 9181,
  create: ({ config, ...options }) => new BrokerService(config, options),
} satisfies ServiceModule<BrokerConfig, BrokerModuleOptions>;
