// Authentication (devices file), authorization by role, and payload validation, with real
// MQTT.js clients against a real broker.
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeAccount } from '../../broker/index.js';
import { deadLetterSchema } from '../../contracts/schemas.js';
import { topicMatches } from '../../contracts/topics.js';
import { sleep, waitFor, withTimeout } from '../../lib/wait.js';
import { grantedQos as granted, startTestBroker, type TestBroker } from '../harness/broker.js';
import { mqttConnect } from './raw-mqtt.js';

let tb: TestBroker;
const clients: MqttClient[] = [];

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null, statsIntervalMs: 500 });
  await tb.addAccount('A/conv-1', 'conv-1-secret', 'device');
  await tb.addAccount('A/conv-2', 'conv-2-secret', 'device');
  await tb.addAccount('ops', 'admin-secret', 'admin');
  await tb.addAccount('rules', 'rules-secret', 'rules');
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await tb?.stop();
});

async function connectAs(username: string | undefined, password: string | undefined, clientId = `${username ?? 'anonymous'}:${Math.random().toString(16).slice(2)}`): Promise<MqttClient> {
  const client = await mqtt.connectAsync(tb.url, { clientId, username, password, reconnectPeriod: 0, connectTimeout: 5000 });
  clients.push(client);
  return client;
}

async function refusalCode(username: string | undefined, password: string | undefined): Promise<number | undefined> {
  try {
    const c = await connectAs(username, password);
    await c.endAsync();
    return undefined;
  } catch (err) {
    return (err as { code?: number }).code;
  }
}

/** Collects every message `client` receives on `filter`. */
async function collect(client: MqttClient, filter: string): Promise<{ topic: string; payload: string }[]> {
  const got: { topic: string; payload: string }[] = [];
  client.on('message', (topic, payload) => {
    if (topicMatches(filter, topic)) got.push({ topic, payload: payload.toString() });
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return got;
}

const state = (seq: number) => JSON.stringify({ ts: Date.now(), seq, state: 'RUNNING' });

describe('authentication', () => {
  it('refuses an anonymous client with CONNACK 5 (not authorized)', async () => {
    expect(await refusalCode(undefined, undefined)).toBe(5);
    expect(tb.broker.stats().rejects.not_authorized).toBeGreaterThanOrEqual(1);
  });

  it('refuses a wrong password and an unknown user with CONNACK 4', async () => {
    expect(await refusalCode('A/conv-1', 'wrong-password')).toBe(4);
    expect(await refusalCode('A/nobody', 'whatever-password')).toBe(4);
    expect(tb.broker.stats().rejects.bad_credentials).toBeGreaterThanOrEqual(2);
  });

  it('accepts the right password', async () => {
    const c = await connectAs('A/conv-1', 'conv-1-secret');
    expect(c.connected).toBe(true);
  });

  it('accepts an account added while the broker runs, and refuses it once removed', async () => {
    expect(await refusalCode('A/late', 'late-secret-1')).toBe(4);
    await tb.addAccount('A/late', 'late-secret-1', 'device');
    expect(await refusalCode('A/late', 'late-secret-1')).toBeUndefined();
    expect(removeAccount(tb.devicesFile, 'A/late')).toBe(true);
    expect(await refusalCode('A/late', 'late-secret-1')).toBe(4);
  });

  it('refuses an empty client id with clean session off with CONNACK 2 (MQTT-3.1.3-8)', async () => {
    const { socket, returnCode } = await mqttConnect(tb.broker.ports.mqtt, '', { clean: false, username: 'A/conv-1', password: 'conv-1-secret' });
    socket.destroy();
    expect(returnCode).toBe(2);
    const ok = await mqttConnect(tb.broker.ports.mqtt, '', { clean: true, username: 'A/conv-1', password: 'conv-1-secret' });
    ok.socket.destroy();
    expect(ok.returnCode).toBe(0);
  });
});

describe('authorization', () => {
  it('lets a device publish only under its own topics, never to its cmd nor as another device', async () => {
    const admin = await connectAs('ops', 'admin-secret');
    const seen = await collect(admin, 'lw/#');
    const dev = await connectAs('A/conv-1', 'conv-1-secret');
    const deniedBefore = tb.broker.stats().rejects.publish_denied;
    await dev.publishAsync('lw/A/conv-2/state', state(1), { qos: 1 }); // as another device
    await dev.publishAsync('lw/A/conv-1/cmd', JSON.stringify({ id: 'x', action: 'stop', origin: 'me', ts: 1, expiresAt: 2 }), { qos: 1 });
    await dev.publishAsync('elsewhere/x', 'hi', { qos: 1 });
    await dev.publishAsync('lw/A/conv-1/state', state(2), { qos: 1 }); // its own: allowed
    await waitFor(() => seen.some((m) => m.topic === 'lw/A/conv-1/state'), 5000, 'the allowed state message');
    await sleep(100);
    expect(seen.map((m) => m.topic)).toEqual(['lw/A/conv-1/state']);
    expect(tb.broker.stats().rejects.publish_denied - deniedBefore).toBe(3);
    expect(dev.connected).toBe(true); // dropped, not disconnected
  });

  it("refuses a device's subscription to another device's commands with SUBACK 0x80", async () => {
    const dev = await connectAs('A/conv-1', 'conv-1-secret');
    expect(await granted(dev, 'lw/A/conv-2/cmd')).toBe(128);
    expect(await granted(dev, 'lw/A/+/cmd')).toBe(128);
    expect(await granted(dev, 'lw/A/conv-1/state')).toBe(128);
    expect(await granted(dev, 'lw/A/conv-1/cmd')).toBe(1);
    expect(tb.broker.stats().rejects.subscribe_denied).toBeGreaterThanOrEqual(2);
  });

  it('delivers a command from the rules account to the device it names only', async () => {
    const dev1 = await connectAs('A/conv-1', 'conv-1-secret');
    const dev2 = await connectAs('A/conv-2', 'conv-2-secret');
    const got1 = await collect(dev1, 'lw/A/conv-1/cmd');
    const got2 = await collect(dev2, 'lw/A/conv-2/cmd');
    const rules = await connectAs('rules', 'rules-secret');
    expect(await granted(rules, '$SYS/#')).toBe(128);
    expect(await granted(rules, 'lw/+/+/telemetry')).toBe(1);
    const cmd = { id: 'c1', action: 'set_speed', params: { speed: 5 }, origin: 'rule:test', ts: Date.now(), expiresAt: Date.now() + 60_000 };
    await rules.publishAsync('lw/A/conv-1/cmd', JSON.stringify(cmd), { qos: 1 });
    await waitFor(() => got1.length === 1, 5000, 'the command at conv-1');
    expect(JSON.parse(got1[0]!.payload)).toMatchObject({ id: 'c1', action: 'set_speed' });
    expect(got2).toEqual([]);

    // …and reports the command's outcome, which the historian stores.
    const admin = await connectAs('ops', 'admin-secret');
    const outcomes = await collect(admin, 'lw/+/+/cmd/outcome');
    const outcome = { id: 'c1', action: 'set_speed', params: { speed: 5 }, origin: 'rule:test', target: 'conv-1', outcome: 'done', attempts: 1, issuedAt: cmd.ts, ts: Date.now() };
    await rules.publishAsync('lw/A/conv-1/cmd/outcome', JSON.stringify(outcome), { qos: 1 });
    await waitFor(() => outcomes.length === 1, 5000, 'the outcome at the admin subscriber');
    expect(JSON.parse(outcomes[0]!.payload)).toMatchObject({ id: 'c1', outcome: 'done' });
  });
});

describe('payload validation', () => {
  it('sends invalid JSON on a device topic to lw/_dead/{clientId} instead of forwarding it', async () => {
    const admin = await connectAs('ops', 'admin-secret');
    const telemetry = await collect(admin, 'lw/A/conv-1/telemetry');
    const dead = await collect(admin, 'lw/_dead/#');
    const dev = await connectAs('A/conv-1', 'conv-1-secret', 'A/conv-1:main');
    await dev.publishAsync('lw/A/conv-1/telemetry', '{"ts": 1, "seq": 1, "values": {"temp": 61', { qos: 1 });
    await dev.publishAsync('lw/A/conv-1/telemetry', JSON.stringify({ ts: 1, seq: 2, values: { temp: 'hot' } }), { qos: 1 });
    await waitFor(() => dead.length === 2, 5000, 'two dead letters');
    const [first, second] = dead.map((m) => ({ topic: m.topic, letter: deadLetterSchema.parse(JSON.parse(m.payload)) }));
    expect(first!.topic).toBe('lw/_dead/A_conv-1:main'); // '/' is not safe in one topic level
    expect(first!.letter).toMatchObject({ clientId: 'A/conv-1:main', topic: 'lw/A/conv-1/telemetry' });
    expect(first!.letter.reason).toMatch(/not valid JSON/);
    expect(Buffer.from(first!.letter.payload, 'base64').toString()).toContain('"temp": 61');
    expect(second!.letter.reason).toMatch(/values\.temp/);
    await sleep(100);
    expect(telemetry).toEqual([]);
    expect(tb.broker.stats().rejects.invalid_payload).toBe(2);
  });
});

describe('stats', () => {
  it('publishes its stats on $SYS/linewatch/ topics for accounts allowed to read them', async () => {
    const admin = await connectAs('ops', 'admin-secret');
    const got = await collect(admin, '$SYS/linewatch/#');
    const stats = await withTimeout(
      waitFor(() => got.find((m) => m.topic === '$SYS/linewatch/stats'), 8000, 'the stats message'),
      9000,
      'the stats message',
    );
    const parsed = JSON.parse(stats.payload) as { clients: number; rejects: Record<string, number> };
    expect(parsed.clients).toBeGreaterThanOrEqual(1);
    expect(parsed.rejects.bad_credentials).toBeGreaterThanOrEqual(2);
    expect(got.some((m) => m.topic === '$SYS/linewatch/clients/connected')).toBe(true);
  });
});
