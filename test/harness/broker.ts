// A real linewatch broker for tests: free ports, its own devices file in a temp dir, removed on stop.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { addAccount, brokerConfigSchema, startBroker, type BrokerConfig, type LinewatchBroker, type Role } from '../../broker/index.js';
import { withTimeout } from '../../lib/wait.js';
import { roleGrants } from '../../config/services.js';

export interface TestBroker {
  broker: LinewatchBroker;
  /** mqtt://127.0.0.1:PORT */
  url: string;
  /** ws://127.0.0.1:PORT/mqtt, unless overrides.wsPort is null */
  wsUrl?: string;
  devicesFile: string;
  addAccount(username: string, password: string, role: Role): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestBroker(overrides: Partial<BrokerConfig> = {}): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-broker-'));
  const devicesFile = join(dir, 'devices.json');
  const config = brokerConfigSchema.parse({ host: '127.0.0.1', persistence: 'memory', port: 0, wsPort: 0, devicesFile, ...overrides });
  let broker: LinewatchBroker;
  try {
    broker = await startBroker(config, { roles: roleGrants(), dataDir: dir });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    broker,
    url: `mqtt://127.0.0.1:${broker.ports.mqtt}`,
    wsUrl: broker.ports.ws === null ? undefined : `ws://127.0.0.1:${broker.ports.ws}/mqtt`,
    devicesFile: config.devicesFile,
    addAccount: (username, password, role) => addAccount(config.devicesFile, { username, password, role }),
    async stop() {
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Proof that a broker still serves: a fresh client subscribes to `topic`, publishes `payload`
 * there at QoS 1, and gets back what the broker delivered (within `timeoutMs`).
 */
export async function roundTrip(url: string, clientId: string, topic: string, payload: string, timeoutMs: number): Promise<string> {
  const client = await mqtt.connectAsync(url, { clientId });
  try {
    await client.subscribeAsync(topic, { qos: 1 });
    const got = withTimeout(new Promise<string>((r) => client.once('message', (_t, p) => r(p.toString()))), timeoutMs, `a message on ${topic} back from the broker`);
    await client.publishAsync(topic, payload, { qos: 1 });
    return await got;
  } finally {
    await client.endAsync();
  }
}

/** For a publisher that stands for devices in a test: a refused in-process publish fails at once, no redelivery. */
export { NO_REDELIVERY } from '../../broker/in-process-bus.js';

/** The QoS the broker granted `client` for `filter`, or 128 for a refusal (MQTT.js rejects on 0x80, with the SUBACK attached). */
export async function grantedQos(client: MqttClient, filter: string): Promise<number | undefined> {
  try {
    return (await client.subscribeAsync(filter, { qos: 1 }))[0]?.qos;
  } catch (err) {
    return (err as { packet?: { granted?: number[] } }).packet?.granted?.[0];
  }
}
