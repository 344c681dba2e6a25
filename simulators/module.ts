// The simulated line as a linewatch service module (lib/service-module.ts): each simulated device
// has its own device account (per-device mode), so it publishes and subscribes what a device does
// under its own name. (Shared mode uses a gateway-role account: see gateway/module.ts.)
import { devicePublishes, deviceSubscribes } from '../contracts/device-topics.js';
import type { ServiceModule } from '../lib/service-module.js';
import { simulateConfigSchema, type SimulateConfig } from './config.js';
import { LineSimulator, type LineSimulatorOptions } from './index.js';

export const simulateModule = {
  name: 'simulate' as const,
  configSchema: simulateConfigSchema,
  role: 'device',
  topics: { publishes: devicePublishes('{account}'), subscribes: deviceSubscribes('{account}') },
  healthPort: 9183,
  create: (options) => new LineSimulator(options),
} satisfies ServiceModule<SimulateConfig, LineSimulatorOptions>;
