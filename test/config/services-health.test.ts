// Every service that reads the broker says so in health(): over a real MqttBus to a real broker,
// the historian, the OEE service and the dashboard are ok while connected and down (with the
// reason) once the broker is gone. (The rules engine's case is in test/rules/health.test.ts, the
// broker's, gateway's and simulator's in their own folders.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MqttBus } from '../../bus/index.js';
import { dashboardModule } from '../../dashboard/module.js';
import { historianConfigSchema } from '../../historian/config.js';
import { historianModule } from '../../historian/module.js';
import type { Service } from '../../lib/service.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { oeeConfigSchema } from '../../oee/config.js';
import { oeeModule } from '../../oee/module.js';
import { startTestBroker } from '../harness/broker.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

let influx: TestInflux;
let dir: string;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  influx = await startTestInflux();
  dir = mkdtempSync(join(tmpdir(), 'linewatch-services-health-'));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await influx?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const SERVICES: [string, (bus: MqttBus) => Service, RegExp][] = [
  ['historian', (bus) => historianModule.create({ bus, config: historianConfigSchema.parse({ influxUrl: influx.url, database: 'health', spoolDir: join(dir, 'spool') }), dataDir: dir, drainTimeoutMs: 500 }), /^not connected to the broker: the broker keeps its QoS 1 messages/],
  ['oee', (bus) => oeeModule.create({ bus, config: oeeConfigSchema.parse({}) }), /^not connected to the broker: no events in, no summaries out/],
  ['dashboard', (bus) => dashboardModule.create({ bus, config: { host: '127.0.0.1', port: 0, token: null } }), /^not connected to the broker: the live view is stale/],
];

describe('health() of a service on a lost broker', () => {
  it.each(SERVICES)('%s: ok while connected, down once the broker is gone', async (name, create, reason) => {
    const broker = await startTestBroker({ wsPort: null, open: true });
    let brokerStopped = false;
    cleanups.push(() => (brokerStopped ? Promise.resolve() : broker.stop()));
    const bus = await MqttBus.connect(broker.url, { clientId: `${name}-health-${process.pid}`, reconnectPeriod: 60_000 });
    cleanups.push(() => withTimeout(bus.close(), 5_000, 'the MQTT bus to close'));
    const service = create(bus);
    cleanups.push(() => service.stop());
    await service.start();
    expect(service.health().reasons.filter((text) => text.startsWith('not connected'))).toEqual([]);
    await broker.stop();
    brokerStopped = true;
    const health = await waitFor(() => (service.health().status === 'down' ? service.health() : undefined), 10_000, `${name} to report the lost broker`);
    expect(health.reasons).toEqual(expect.arrayContaining([expect.stringMatching(reason)]));
  });
});
