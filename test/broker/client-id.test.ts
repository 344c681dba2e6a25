// Client ids are bound to accounts (docs/broker.md#authentication): an account may use its
// username as client id, or its username, ':' and a suffix. A device cannot take over a
// service's session — neither inherit it (clean=0) nor wipe it (clean=1). Real broker, real
// MQTT.js clients and mosquitto_pub.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttBus } from '../../bus/index.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { mosquittoPub } from '../harness/mosquitto-clients.js';

let tb: TestBroker;
const clients: MqttClient[] = [];

const DEVICE = { username: 'L/d19', password: 'd19-secret-pass' };
const OTHER_DEVICE = { username: 'L/d1', password: 'd1-secret-pass' };
const GATEWAY = { username: 'gw-1', password: 'gateway-secret-1' };
const SERVICES = [
  { role: 'historian', username: 'hist-1', password: 'historian-secret-1' },
  { role: 'rules', username: 'rules-1', password: 'rules-secret-1' },
] as const;

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount(DEVICE.username, DEVICE.password, 'device');
  await tb.addAccount(OTHER_DEVICE.username, OTHER_DEVICE.password, 'device');
  await tb.addAccount(GATEWAY.username, GATEWAY.password, 'gateway');
  for (const s of SERVICES) await tb.addAccount(s.username, s.password, s.role);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await tb?.stop();
});

/** Connects; resolves with the client, or rejects with MQTT.js's error (its `code` is the CONNACK return code). */
async function connect(options: IClientOptions): Promise<MqttClient> {
  const client = await mqtt.connectAsync(tb.url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  clients.push(client);
  return client;
}

/** The CONNACK refusal code for `options`, or 0 if the broker accepted them. */
async function connackCode(options: IClientOptions): Promise<number> {
  try {
    const client = await connect(options);
    await client.endAsync();
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

/** Records every message `client` receives from now on. */
function record(client: MqttClient): string[] {
  const got: string[] = [];
  client.on('message', (topic) => got.push(topic));
  return got;
}

const state = (seq: number) => JSON.stringify({ ts: Date.now(), seq, state: 'RUNNING' });

describe.each(SERVICES)("a device taking the $role service's client id", (service) => {
  it('with clean=0 is refused with CONNACK 2 and gets none of the messages queued for the service', async () => {
    const serviceOptions = { clientId: service.username, username: service.username, password: service.password, clean: false };
    const first = await connect(serviceOptions);
    await first.subscribeAsync('lw/+/+/state', { qos: 1 });
    await first.endAsync(); // offline: the broker now queues QoS 1 messages for its session

    const gateway = await connect({ clientId: `${GATEWAY.username}:pub`, ...GATEWAY });
    const topics = [1, 2, 3].map((seq) => `lw/L/q${seq}-${service.role}/state`);
    for (const [i, topic] of topics.entries()) await gateway.publishAsync(topic, state(i + 1), { qos: 1 });

    const deniedBefore = tb.broker.stats().rejects.client_id_denied;
    // The thief listens before CONNACK: a persistent session's queue is sent right after it.
    const thief = mqtt.connect(tb.url, { clientId: service.username, ...DEVICE, clean: false, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(thief);
    const stolen = record(thief);
    const refusal = await withTimeout(
      new Promise<number | undefined>((resolve) => {
        thief.once('connect', () => resolve(0));
        thief.once('error', (err) => resolve((err as { code?: number }).code));
      }),
      5000,
      'the broker to answer the thief',
    );
    expect(refusal).toBe(2);
    expect(tb.broker.stats().rejects.client_id_denied - deniedBefore).toBe(1);

    // The service comes back and finds everything still queued for it.
    const back = mqtt.connect(tb.url, { ...serviceOptions, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(back);
    const delivered = record(back);
    await waitFor(() => topics.every((t) => delivered.includes(t)), 5000, `the three queued messages at ${service.username}`);
    expect(stolen).toEqual([]);
    await back.endAsync();
  });

  it("with clean=1 is refused with CONNACK 2 and the service's session and subscription survive", async () => {
    const live = await connect({ clientId: service.username, username: service.username, password: service.password, clean: false });
    await live.subscribeAsync('lw/+/+/state', { qos: 1 });
    const delivered = record(live);
    let kicked = false;
    live.on('close', () => (kicked = true));

    expect(await connackCode({ clientId: service.username, ...DEVICE, clean: true })).toBe(2);
    expect(await connackCode({ clientId: `${service.username}:x`, ...DEVICE, clean: true })).toBe(2);

    const gateway = await connect({ clientId: `${GATEWAY.username}:after-${service.role}`, ...GATEWAY });
    const topic = `lw/L/after-${service.role}/state`;
    await gateway.publishAsync(topic, state(1), { qos: 1 });
    await waitFor(() => delivered.includes(topic), 5000, `the message at the live ${service.username}`);
    expect(kicked).toBe(false);
    expect(live.connected).toBe(true);
    await live.endAsync();
  });
});

describe('client ids bound to accounts', () => {
  it("accepts a device's own username as its client id, and its username, ':' and a suffix", async () => {
    expect(await connackCode({ clientId: DEVICE.username, ...DEVICE })).toBe(0);
    expect(await connackCode({ clientId: `${DEVICE.username}:sim-7f3a`, ...DEVICE })).toBe(0);
  });

  it("refuses ids that are not derived from the account's own username, with CONNACK 2, and counts them", async () => {
    const before = tb.broker.stats().rejects.client_id_denied;
    const refused: [IClientOptions, string][] = [
      [OTHER_DEVICE, DEVICE.username], // L/d1 is a prefix of L/d19: still not its id
      [OTHER_DEVICE, `${OTHER_DEVICE.username}9`],
      [DEVICE, 'linewatch-historian'], // the historian's and rules' fixed ids of old
      [DEVICE, 'linewatch-rules'],
      [GATEWAY, 'linewatch-historian'],
      [GATEWAY, 'hist-1'],
      [{ username: 'rules-1', password: 'rules-secret-1' }, 'hist-1'], // a service cannot take another's either
      [DEVICE, 'mqttjs_1234abcd'],
    ];
    for (const [account, clientId] of refused) {
      expect({ clientId, code: await connackCode({ clientId, ...account }) }).toEqual({ clientId, code: 2 });
    }
    expect(tb.broker.stats().rejects.client_id_denied - before).toBe(refused.length);
    expect(tb.broker.counters().rejected_client_id_denied).toBeGreaterThanOrEqual(refused.length);
  });

  it('MqttBus picks an id the broker accepts when given none, and says what is wrong with a refused one', async () => {
    const bus = await MqttBus.connect(tb.url, { ...GATEWAY, reconnectPeriod: 0 });
    expect(bus.client.options.clientId).toMatch(/^gw-1:bus-/);
    await bus.close();
    await expect(MqttBus.connect(tb.url, { ...GATEWAY, clientId: 'linewatch-gateway-4711', reconnectPeriod: 0 })).rejects.toThrow(/refused the client id "linewatch-gateway-4711": with an account, use the username or USERNAME:suffix/);
  });

  it('lets an empty client id with clean session on through (the broker assigns a unique one)', async () => {
    expect(await connackCode({ clientId: '', ...DEVICE, clean: true })).toBe(0);
  });

  it('works with mosquitto_pub -i USERNAME:SUFFIX, and refuses mosquitto_pub -i linewatch-historian', async () => {
    const ok = await mosquittoPub(tb.broker.ports.mqtt, `lw/${DEVICE.username}/state`, state(1), { qos: 1, credentials: DEVICE, id: `${DEVICE.username}:mosq` });
    expect(ok.code).toBe(0);
    const refused = await mosquittoPub(tb.broker.ports.mqtt, `lw/${DEVICE.username}/state`, state(2), { qos: 1, credentials: DEVICE, id: 'linewatch-historian' });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/identifier rejected/i);
  });

  it('leaves open mode open: any client id', async () => {
    const open = await startTestBroker({ wsPort: null, open: true });
    try {
      const client = await mqtt.connectAsync(open.url, { clientId: 'linewatch-historian', reconnectPeriod: 0 });
      expect(client.connected).toBe(true);
      await client.endAsync();
    } finally {
      await open.stop();
    }
  });
});
