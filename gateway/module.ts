// The serial gateway as a linewatch service module (lib/service-module.ts): it speaks for the
// serial devices behind it, so it publishes and subscribes what a device does, for any device.
import { devicePublishes, deviceSubscribes } from '../contracts/device-topics.js';
import type { ServiceModule } from '../lib/service-module.js';
import { gatewayConfigSchema, type GatewayConfig } from './config.js';
import { SerialGateway, type SerialGatewayOptions } from './index.js';

export const gatewayModule = {
  name: 'gateway' as const,
  configSchema: gatewayConfigSchema,
  role: 'gateway',
  topics: { publishes: devicePublishes('+/+'), subscribes: deviceSubscribes('+/+') },
  healthPort: 9182,
  create: (options) => new SerialGateway(options),
} satisfies ServiceModule<GatewayConfig, SerialGatewayOptions>;
