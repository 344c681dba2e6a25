// Details of the Sparkplug 3.0 host profile (docs/sparkplug.md#host-profile-what-is-met), each
// named by its tck-id, against the real embedded broker with Tahu's sparkplug-client as the edge
// node and a raw MQTT observer reading what the host puts on the wire.
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeSparkplug, encodeSparkplug, type Payload } from '../../contracts/sparkplug/codec.js';
import { waitFor } from '../../lib/wait.js';
import { SparkplugHost, sparkplugConfigSchema } from '../../sparkplug/index.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { connectedClient } from '../harness/mqtt-client.js';
import { TestEdge } from '../harness/sparkplug-edge.js';

const PASSWORD = 'Sparkplug-spec-secret-7';
const HOST_ID = 'lw-spec-host';
const WAIT_MS = 10_000;

let tb: TestBroker;
const clients: MqttClient[] = [];
const edges: TestEdge[] = [];
const hosts: SparkplugHost[] = [];

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount(HOST_ID, PASSWORD, 'sparkplug');
  await tb.addAccount('ops', PASSWORD, 'admin');
  for (const edge of ['edge-1', 'edge-2']) await tb.addAccount(`S1/${edge}`, PASSWORD, 'sparkplug-edge');
});

afterEach(async () => {
  for (const edge of edges.splice(0)) edge.stop();
  for (const host of hosts.splice(0)) await host.stop();
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.endAsync(true)));
  await tb?.stop();
});

function newHost(): SparkplugHost {
  const host = new SparkplugHost({ bus: tb.broker.bus, config: sparkplugConfigSchema.parse({ enabled: true, hostId: HOST_ID, rebirthThrottleMs: 0 }), mqtt: { url: tb.url, username: HOST_ID, password: PASSWORD } });
  hosts.push(host);
  return host;
}

async function observe(filter: string): Promise<{ topic: string; payload: Buffer }[]> {
  const seen: { topic: string; payload: Buffer }[] = [];
  const observer = await connectedClient(clients, tb.url, { clientId: `ops:${Math.random().toString(36).slice(2)}`, username: 'ops', password: PASSWORD });
  observer.on('message', (topic, payload) => void seen.push({ topic, payload }));
  await observer.subscribeAsync(filter, { qos: 1 });
  return seen;
}

describe('Sparkplug 3.0 host profile', () => {
  it('tck-id-payloads-alias-data-cmd-requirement, -dcmd-timestamp, -dcmd-seq: a DCMD names a metric by its alias only, with a timestamp and no seq', async () => {
    const dcmd = await observe('spBv1.0/S1/DCMD/#');
    const host = newHost();
    await host.start();
    const edge = new TestEdge({ url: tb.url, group: 'S1', edge: 'edge-1', password: PASSWORD, devices: { 'press-1': [{ name: 'speedSetpoint', alias: 4, type: 'Float', value: 20 }], 'press-2': [{ name: 'speedSetpoint', type: 'Float', value: 20 }] } });
    edges.push(edge);
    await edge.connected();
    await waitFor(() => host.counters().device_births === 2, WAIT_MS, 'both DBIRTHs');
    const now = Date.now();
    for (const device of ['press-1', 'press-2']) {
      await tb.broker.bus.publish(`lw/S1/${device}/cmd`, JSON.stringify({ id: `c-${device}`, action: 'set_speed', params: { speed: 25 }, origin: 'rule:test', ts: now, expiresAt: now + 60_000 }), { qos: 1 });
    }
    await waitFor(() => dcmd.length === 2, WAIT_MS, 'the two DCMDs');
    const byDevice = Object.fromEntries(dcmd.map((message) => [message.topic.split('/').at(-1), decodeSparkplug(message.payload)])) as Record<string, Payload>;
    // With an alias from the birth: the alias alone; without one: the name.
    expect(byDevice['press-1']?.metrics).toEqual([{ alias: 4, type: 'Float', value: 25 }]);
    expect(byDevice['press-2']?.metrics).toEqual([{ name: 'speedSetpoint', type: 'Float', value: 25 }]);
    for (const payload of Object.values(byDevice)) {
      expect(payload.seq).toBeUndefined();
      expect(payload.timestamp).toBeGreaterThanOrEqual(now);
    }
  });

  it('tck-id-host-topic-phid-death-payload-timestamp-disconnect-clean: a host stopping on purpose publishes its death with the time it stops', async () => {
    const host = newHost();
    await host.start();
    const states = await observe(`spBv1.0/STATE/${HOST_ID}`);
    const parsed = (): { online: boolean; timestamp: number }[] => states.map((state) => JSON.parse(state.payload.toString()) as { online: boolean; timestamp: number });
    // (An earlier test's host left its death retained: the birth is the online one.)
    const birth = await waitFor(() => parsed().find((state) => state.online), WAIT_MS, 'the STATE birth');
    states.length = 0;
    await waitFor(() => Date.now() > birth.timestamp, WAIT_MS, 'a millisecond after the birth');
    const stopping = Date.now();
    await host.stop();
    const death = await waitFor(() => parsed().find((state) => !state.online), WAIT_MS, 'the STATE death');
    expect(death.timestamp).toBeGreaterThanOrEqual(stopping);
  });

  it('tck-id-message-flow-hid-sparkplug-state-message-delivered: told it is offline while online, it publishes its birth again with the same timestamp', async () => {
    const host = newHost();
    await host.start();
    const states = await observe(`spBv1.0/STATE/${HOST_ID}`);
    const parsed = (): { online: boolean; timestamp: number }[] => states.map((state) => JSON.parse(state.payload.toString()) as { online: boolean; timestamp: number });
    const birth = await waitFor(() => parsed().find((state) => state.online), WAIT_MS, 'the STATE birth');
    const ops = await connectedClient(clients, tb.url, { clientId: 'ops:late-will', username: 'ops', password: PASSWORD });
    await ops.publishAsync(`spBv1.0/STATE/${HOST_ID}`, JSON.stringify({ online: false, timestamp: birth.timestamp - 1000 }), { qos: 1, retain: true });
    await waitFor(() => host.counters().state_births === 2, WAIT_MS, 'the birth published again');
    const last = await waitFor(() => parsed().at(-1)?.online === true ? parsed().at(-1) : undefined, WAIT_MS, 'the birth again, last on the topic');
    expect(last).toEqual({ online: true, timestamp: birth.timestamp });
  });

  it('tck-id-operational-behavior-edge-node-termination-host-action-ddeath-devices-offline: a DDEATH marks the device offline at its own timestamp', async () => {
    const host = newHost();
    await host.start();
    const statuses: Record<string, unknown>[] = [];
    const stop = await tb.broker.bus.subscribe('lw/S1/press-3/status', (_topic, payload) => void statuses.push(JSON.parse(payload.toString()) as Record<string, unknown>));
    const edge = new TestEdge({ url: tb.url, group: 'S1', edge: 'edge-2', password: PASSWORD, devices: { 'press-3': [{ name: 'pressure', alias: 1, type: 'Float', value: 2 }] } });
    edges.push(edge);
    await edge.connected();
    await waitFor(() => statuses.some((status) => status.status === 'online'), WAIT_MS, 'press-3 online');
    const deathAt = Date.now() - 5000; // the edge node's own time, not the host's
    edge.client.publishDeviceDeath('press-3', { timestamp: deathAt });
    const offline = await waitFor(() => statuses.find((status) => status.status === 'offline'), WAIT_MS, 'press-3 offline');
    expect(offline.ts).toBe(deathAt);
    expect(host.node('S1', 'edge-2')?.devices['press-3']).toMatchObject({ online: false, metrics: [expect.objectContaining({ name: 'pressure', stale: true })] });
    await stop();
  });

  it('tck-id-host-topic-phid-birth-message: its first message on a connection is its STATE birth, even when a retained Sparkplug message makes it ask for a rebirth', async () => {
    // A retained NDATA of a node the host has never seen: delivered to the host as it subscribes to spBv1.0/#, before its birth.
    const ops = await connectedClient(clients, tb.url, { clientId: 'ops:retained', username: 'ops', password: PASSWORD });
    await ops.publishAsync('spBv1.0/S1/NDATA/edge-2', encodeSparkplug({ timestamp: Date.now(), seq: 3, metrics: [{ name: 'x', type: 'Int32', value: 1 }] }), { qos: 1, retain: true });
    const wire = await observe('spBv1.0/#');
    wire.length = 0; // the retained NDATA itself
    const host = newHost();
    await host.start();
    await waitFor(() => host.counters().data_before_birth >= 1, WAIT_MS, `the retained NDATA at the host; ${JSON.stringify(host.counters())}`);
    await ops.publishAsync('spBv1.0/S1/NDATA/edge-2', Buffer.alloc(0), { qos: 1, retain: true }); // clear it
    await waitFor(() => wire.some((message) => message.topic === `spBv1.0/STATE/${HOST_ID}`), WAIT_MS, 'the STATE birth');
    const fromHost = wire.filter((message) => message.topic === `spBv1.0/STATE/${HOST_ID}` || message.topic.includes('/NCMD/')).map((message) => message.topic);
    expect(fromHost[0]).toBe(`spBv1.0/STATE/${HOST_ID}`);
  });
});
