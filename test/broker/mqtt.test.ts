// MQTT behaviour through the full linewatch broker (auth and ACL on, admin accounts), with
// MQTT.js and Debian's mosquitto_pub / mosquitto_sub as clients.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Client } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topicMatches } from '../../contracts/topics.js';
import { sleep, waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { mosquittoPub, mosquittoSub } from '../harness/mosquitto-clients.js';

let tb: TestBroker;
const admin = { username: 'ops', password: 'ops-password' };
const open: MqttClient[] = [];

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount(admin.username, admin.password, 'admin');
  await tb.addAccount('A/conv-1', 'conv-1-secret', 'device');
});
afterAll(async () => {
  await Promise.all(open.map((c) => c.endAsync(true)));
  await tb?.stop();
});

/** An admin client; its client id is `ops:` + `name` (an account may use only ids derived from its username). */
async function client(name: string, extra: IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(tb.url, { clientId: `${admin.username}:${name}`, ...admin, reconnectPeriod: 0, ...extra });
  open.push(c);
  return c;
}

interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

function inbox(c: MqttClient, filter = '#'): Received[] {
  const got: Received[] = [];
  c.on('message', (topic, payload, packet) => {
    if (topicMatches(filter, topic)) got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain });
  });
  return got;
}

/** Resolves once the broker has processed a SUBSCRIBE from `clientId`. */
function subscribed(clientId: string): Promise<void> {
  return withTimeout(
    new Promise((resolve) => {
      const onSubscribe = (_subs: unknown, c: Client): void => {
        if (c.id !== clientId) return;
        tb.broker.aedes.off('subscribe', onSubscribe);
        resolve();
      };
      tb.broker.aedes.on('subscribe', onSubscribe);
    }),
    10_000,
    `${clientId} to subscribe`,
  );
}

describe('MQTT.js clients', () => {
  it('delivers QoS 0, 1 and 2 with the lower of the publish and subscription QoS', async () => {
    const sub = await client('qos-sub');
    const got = inbox(sub, 'q/#');
    await sub.subscribeAsync('q/two', { qos: 2 });
    await sub.subscribeAsync('q/one', { qos: 1 });
    const pub = await client('qos-pub');
    for (const qos of [0, 1, 2] as const) {
      await pub.publishAsync('q/two', `two-${qos}`, { qos });
      await pub.publishAsync('q/one', `one-${qos}`, { qos });
    }
    await waitFor(() => got.length === 6, 5000, 'six messages');
    const byPayload = Object.fromEntries(got.map((m) => [m.payload, m.qos]));
    expect(byPayload).toEqual({ 'two-0': 0, 'two-1': 1, 'two-2': 2, 'one-0': 0, 'one-1': 1, 'one-2': 1 });
  });

  it('keeps the last retained message per topic for later subscribers, and clears it on an empty payload', async () => {
    const pub = await client('retain-pub');
    await pub.publishAsync('r/a', 'first', { qos: 1, retain: true });
    await pub.publishAsync('r/a', 'second', { qos: 1, retain: true });
    await pub.publishAsync('r/b', 'bee', { qos: 1, retain: true });
    await pub.publishAsync('r/b', '', { qos: 1, retain: true });
    const late = await client('retain-sub');
    const got = inbox(late, 'r/#');
    await late.subscribeAsync('r/#', { qos: 1 });
    await waitFor(() => got.length >= 1, 5000, 'the retained message');
    await sleep(100);
    expect(got).toEqual([{ topic: 'r/a', payload: 'second', qos: 1, retain: true }]);
  });

  it('matches + and # wildcards, and keeps $SYS out of #', async () => {
    const sub = await client('wild-sub');
    const plus = inbox(sub, 'w/+/t');
    const hash = inbox(sub, 'w/#');
    await sub.subscribeAsync(['w/+/t', 'w/#'], { qos: 1 });
    const all = inbox(await client('all-sub'), '#');
    await open.at(-1)!.subscribeAsync('#', { qos: 0 });
    const pub = await client('wild-pub');
    for (const t of ['w/x/t', 'w/y/t', 'w/x/u', 'w/x/t/deeper', 'w']) await pub.publishAsync(t, t, { qos: 1 });
    await waitFor(() => hash.length === 5, 5000, 'five messages on w/#');
    expect(plus.map((m) => m.topic)).toEqual(['w/x/t', 'w/y/t']);
    expect(hash.map((m) => m.topic)).toEqual(['w/x/t', 'w/y/t', 'w/x/u', 'w/x/t/deeper', 'w']);
    await sleep(100);
    expect(all.filter((m) => m.topic.startsWith('$'))).toEqual([]);
  });

  it("publishes a client's will when it disconnects abruptly, and not when it disconnects cleanly", async () => {
    const watcher = await client('will-watcher');
    const got = inbox(watcher, 'lw/A/conv-1/status');
    await watcher.subscribeAsync('lw/A/conv-1/status', { qos: 1 });
    const will = { topic: 'lw/A/conv-1/status', payload: Buffer.from(JSON.stringify({ ts: 1, status: 'offline' })), qos: 1 as const, retain: false };
    const polite = await mqtt.connectAsync(tb.url, { clientId: 'A/conv-1:polite', username: 'A/conv-1', password: 'conv-1-secret', reconnectPeriod: 0, will });
    await polite.endAsync();
    const device = await mqtt.connectAsync(tb.url, { clientId: 'A/conv-1', username: 'A/conv-1', password: 'conv-1-secret', reconnectPeriod: 0, will });
    device.stream.destroy(); // no DISCONNECT: the network went away
    await waitFor(() => got.length === 1, 5000, 'the will');
    device.end(true);
    await sleep(100);
    expect(got).toEqual([{ topic: 'lw/A/conv-1/status', payload: JSON.stringify({ ts: 1, status: 'offline' }), qos: 1, retain: false }]);
  });

  it('queues QoS 1 messages for a persistent session while it is offline', async () => {
    const first = await client('persistent', { clean: false });
    await first.subscribeAsync('p/topic', { qos: 1 });
    await first.endAsync();
    const pub = await client('persistent-pub');
    await pub.publishAsync('p/topic', 'while-you-were-away', { qos: 1 });
    const again = mqtt.connect(tb.url, { clientId: `${admin.username}:persistent`, clean: false, ...admin, reconnectPeriod: 0 });
    open.push(again);
    const got = inbox(again, 'p/topic'); // before CONNACK: the queued message can come right after it
    await waitFor(() => got.length === 1, 5000, 'the queued message');
    expect(got[0]).toMatchObject({ payload: 'while-you-were-away', qos: 1 });
  });
});

describe("Debian's mosquitto clients", () => {
  it('carry QoS 0, 1 and 2 messages and retained ones', async () => {
    for (const qos of [0, 1, 2] as const) {
      const ready = subscribed(`${admin.username}:msub-${qos}`);
      const sub = mosquittoSub(tb.broker.ports.mqtt, `m/${qos}`, { count: 1, qos, credentials: admin, id: `${admin.username}:msub-${qos}` });
      await ready;
      const pub = await mosquittoPub(tb.broker.ports.mqtt, `m/${qos}`, `hello-${qos}`, { qos, credentials: admin });
      expect(pub.code).toBe(0);
      const result = await sub;
      expect(result.code).toBe(0);
      expect(result.stdout.trim()).toBe(`m/${qos} hello-${qos}`);
    }
    expect((await mosquittoPub(tb.broker.ports.mqtt, 'm/retained', 'kept', { qos: 1, retain: true, credentials: admin })).code).toBe(0);
    const late = await mosquittoSub(tb.broker.ports.mqtt, 'm/retained', { count: 1, seconds: 5, credentials: admin });
    expect(late.stdout.trim()).toBe('m/retained kept');
  });

  it('are refused with a wrong password, and mosquitto_pub says so', async () => {
    const result = await mosquittoPub(tb.broker.ports.mqtt, 'm/x', 'nope', { credentials: { username: 'ops', password: 'wrong-password' } });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/bad user name or password/i);
    const anonymous = await mosquittoPub(tb.broker.ports.mqtt, 'm/x', 'nope');
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toMatch(/not authori[sz]ed/i);
  });
});
