// The Sparkplug B primary host against the real embedded broker (authentication and ACL on),
// with Eclipse Tahu's sparkplug-client as an independent edge node (test/harness/sparkplug-edge.ts)
// and what the host publishes read back on the linewatch side of the broker.
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { InProcessBus } from '../../broker/in-process-bus.js';
import { parseTopic } from '../../contracts/topics.js';
import { waitFor } from '../../lib/wait.js';
import { SparkplugHost, sparkplugConfigSchema, type SparkplugConfig } from '../../sparkplug/index.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { connectedClient } from '../harness/mqtt-client.js';
import { TestEdge, type EdgeMetric } from '../harness/sparkplug-edge.js';

const PASSWORD = 'Sparkplug-test-secret-7';
const HOST_ID = 'lw-host';
const WAIT_MS = 10_000;

let tb: TestBroker;
const clients: MqttClient[] = [];
const edges: TestEdge[] = [];
const hosts: SparkplugHost[] = [];
let lw: { topic: string; payload: Record<string, unknown> }[] = [];
let stopWatching: (() => Promise<void>) | undefined;

const PRESS: EdgeMetric[] = [
  { name: 'state', alias: 1, type: 'String', value: 'RUNNING' },
  { name: 'type', alias: 2, type: 'String', value: 'station' },
  { name: 'Motor/Temp', alias: 3, type: 'Float', value: 41.5 },
  { name: 'speedSetpoint', alias: 4, type: 'Float', value: 20 },
  { name: 'running', alias: 5, type: 'Boolean', value: true },
];

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount(HOST_ID, PASSWORD, 'sparkplug');
  await tb.addAccount('ops', PASSWORD, 'admin');
  for (const edge of ['edge-1', 'edge-2', 'edge-3', 'edge-4', 'edge-5', 'edge-6']) await tb.addAccount(`G1/${edge}`, PASSWORD, 'sparkplug-edge');
  const bus: InProcessBus = tb.broker.bus;
  stopWatching = await bus.subscribe('lw/#', (topic, payload) => {
    lw.push({ topic, payload: JSON.parse(payload.toString()) as Record<string, unknown> });
  });
});

afterEach(async () => {
  for (const edge of edges.splice(0)) edge.stop();
  for (const host of hosts.splice(0)) await host.stop();
  lw = [];
});

afterAll(async () => {
  await stopWatching?.();
  await Promise.all(clients.map((client) => client.endAsync(true)));
  await tb?.stop();
});

async function startHost(overrides: Partial<SparkplugConfig> = {}): Promise<SparkplugHost> {
  const config = sparkplugConfigSchema.parse({ enabled: true, hostId: HOST_ID, reorderTimeoutMs: 300, rebirthThrottleMs: 0, ...overrides });
  const host = new SparkplugHost({ bus: tb.broker.bus, config, mqtt: { url: tb.url, username: HOST_ID, password: PASSWORD } });
  hosts.push(host);
  await host.start();
  return host;
}

async function startEdge(edge: string, devices: Record<string, EdgeMetric[]> = { 'press-1': PRESS }): Promise<TestEdge> {
  const node = new TestEdge({ url: tb.url, group: 'G1', edge, password: PASSWORD, devices });
  edges.push(node);
  await node.connected();
  return node;
}

function received(kind: string, device: string, match: (payload: Record<string, unknown>) => boolean = () => true): Record<string, unknown>[] {
  return lw.filter((message) => {
    const parsed = parseTopic(message.topic);
    return parsed?.kind === kind && parsed.line === 'G1' && parsed.device === device && match(message.payload);
  }).map((message) => message.payload);
}

const readings = (payload: Record<string, unknown>): Record<string, number> => payload.values as Record<string, number>;

describe('Sparkplug primary host', () => {
  it('publishes its retained STATE birth after subscribing, and its will says offline with the same timestamp when its connection is cut', async () => {
    const host = await startHost();
    const observer = await connectedClient(clients, tb.url, { clientId: 'ops:state', username: 'ops', password: PASSWORD });
    const states: { online: boolean; timestamp: number; retain: boolean }[] = [];
    observer.on('message', (_topic, payload, packet) => states.push({ ...(JSON.parse(payload.toString()) as { online: boolean; timestamp: number }), retain: packet.retain }));
    await observer.subscribeAsync(`spBv1.0/STATE/${HOST_ID}`, { qos: 1 });
    const birth = await waitFor(() => states.find((state) => state.online), WAIT_MS, 'the retained STATE birth');
    expect(birth.retain).toBe(true);
    expect(typeof birth.timestamp).toBe('number');

    // Cut the host's socket (no DISCONNECT): the broker publishes its will; the host reconnects and is born again.
    const internals = host as unknown as { client?: { stream?: { destroy?: () => void } } };
    if (typeof internals.client?.stream?.destroy !== 'function') throw new Error('SparkplugHost no longer keeps its MQTT.js client in `client`');
    internals.client.stream.destroy();
    const death = await waitFor(() => states.find((state) => !state.online), WAIT_MS, 'the STATE will (online: false)');
    expect(death.timestamp).toBe(birth.timestamp);
    const rebirth = await waitFor(() => states.find((state) => state.online && state.timestamp > birth.timestamp), WAIT_MS, 'a new STATE birth after reconnecting');
    expect(rebirth.online).toBe(true);

    await host.stop();
    await waitFor(() => states.at(-1)?.online === false, WAIT_MS, 'the STATE death a stopping host publishes');
  });

  it('maps NBIRTH/DBIRTH and DDATA by alias into linewatch status, state and telemetry', async () => {
    const host = await startHost();
    const edge = await startEdge('edge-1');
    await waitFor(() => received('status', 'press-1', (payload) => payload.status === 'online').length > 0, WAIT_MS, 'press-1 online on lw/G1/press-1/status');
    const state = await waitFor(() => received('state', 'press-1')[0], WAIT_MS, 'the state of press-1');
    expect(state).toMatchObject({ state: 'RUNNING', type: 'station' });
    const first = await waitFor(() => received('telemetry', 'press-1')[0], WAIT_MS, 'the birth readings of press-1');
    expect(readings(first)).toEqual({ Motor_Temp: 41.5, speedSetpoint: 20, running: 1 });

    edge.data('press-1', [{ alias: 3, type: 'Float', value: 55.25 }]);
    const data = await waitFor(() => received('telemetry', 'press-1', (payload) => readings(payload).Motor_Temp === 55.25)[0], WAIT_MS, 'DDATA by alias as telemetry');
    expect(Object.keys(readings(data))).toEqual(['Motor_Temp']);
    edge.data('press-1', [{ alias: 1, type: 'String', value: 'FAULT' }]);
    await waitFor(() => received('state', 'press-1', (payload) => payload.state === 'FAULT').length > 0, WAIT_MS, 'the FAULT state from DDATA');
    expect(host.counters()).toMatchObject({ births: 1, device_births: 1, rebirths_requested: 0, malformed: 0 });
    expect(host.node('G1', 'edge-1')?.devices['press-1']?.metrics.find((metric) => metric.name === 'Motor/Temp')).toMatchObject({ type: 'Float', alias: 3, value: 55.25 });
  });

  it('takes messages that arrive out of seq order in order, and asks for a rebirth when a seq never comes', async () => {
    const host = await startHost();
    const edge = await startEdge('edge-2');
    await waitFor(() => received('telemetry', 'press-1').length > 0, WAIT_MS, 'the birth readings');
    const next = edge.seq;
    edge.seq = next + 1;
    edge.data('press-1', [{ alias: 3, type: 'Float', value: 2 }]);
    edge.seq = next;
    edge.data('press-1', [{ alias: 3, type: 'Float', value: 1 }]);
    edge.seq = next + 2;
    await waitFor(() => received('telemetry', 'press-1', (payload) => readings(payload).Motor_Temp === 2).length > 0, WAIT_MS, 'the reordered DDATA');
    const temps = received('telemetry', 'press-1').map((payload) => readings(payload).Motor_Temp);
    expect(temps.slice(-2)).toEqual([1, 2]);
    expect(host.counters()).toMatchObject({ seq_reorders: 1, seq_gaps: 0, rebirths_requested: 0 });

    // seq next+2 is skipped: after the reorder timeout the host requests a rebirth, and the edge node is born again.
    edge.seq = next + 3;
    edge.data('press-1', [{ alias: 3, type: 'Float', value: 4 }]);
    await waitFor(() => edge.rebirths() > 0, WAIT_MS, 'a Node Control/Rebirth NCMD after the missing seq');
    expect(received('telemetry', 'press-1', (payload) => readings(payload).Motor_Temp === 4)).toEqual([]);
    await waitFor(() => host.counters().births === 2, WAIT_MS, 'the NBIRTH that answers the rebirth request');
    expect(host.counters()).toMatchObject({ seq_gaps: 1, rebirths_requested: 1 });
  });

  it('requests a rebirth for an unknown alias, and for data before any birth (throttled)', async () => {
    const host = await startHost({ rebirthThrottleMs: 60_000 });
    const edge = await startEdge('edge-3');
    await waitFor(() => received('telemetry', 'press-1').length > 0, WAIT_MS, 'the birth readings');
    edge.data('press-1', [{ alias: 99, type: 'Float', value: 1 }]);
    await waitFor(() => edge.rebirths() === 1, WAIT_MS, 'a rebirth request for alias 99');
    expect(host.counters().unknown_alias).toBe(1);
    // A second one inside rebirthThrottleMs is counted, not sent.
    await waitFor(() => host.counters().births === 2, WAIT_MS, 'the rebirth');
    edge.data('press-1', [{ alias: 98, type: 'Float', value: 1 }]);
    await waitFor(() => host.counters().rebirths_throttled === 1, WAIT_MS, 'the throttled second request');
    expect(edge.rebirths()).toBe(1);

    // An edge node already running when the host starts: its data comes before any birth the host saw.
    const raw = await connectedClient(clients, tb.url, { clientId: 'G1/edge-4:raw', username: 'G1/edge-4', password: PASSWORD });
    const requests: string[] = [];
    raw.on('message', (topic) => requests.push(topic));
    await raw.subscribeAsync('spBv1.0/G1/NCMD/edge-4/#', { qos: 1 });
    const { encodeSparkplug } = await import('../../contracts/sparkplug/codec.js');
    await raw.publishAsync('spBv1.0/G1/DDATA/edge-4/press-9', encodeSparkplug({ timestamp: Date.now(), seq: 7, metrics: [{ alias: 3, type: 'Float', value: 1 }] }), { qos: 1 });
    await raw.publishAsync('spBv1.0/G1/NDATA/edge-4', Buffer.from('not protobuf at all'), { qos: 1 });
    await waitFor(() => requests.length > 0, WAIT_MS, 'a rebirth request to edge-4');
    expect(host.counters()).toMatchObject({ data_before_birth: 1, malformed: 1 });
    expect(requests).toEqual(['spBv1.0/G1/NCMD/edge-4']);
  });

  it('marks the devices offline on an NDEATH with the birth bdSeq (will on abrupt disconnect), and ignores one with another bdSeq', async () => {
    const host = await startHost();
    const edge = await startEdge('edge-5');
    await waitFor(() => received('status', 'press-1', (payload) => payload.status === 'online').length > 0, WAIT_MS, 'press-1 online');

    // An NDEATH of another session (bdSeq 41): the node stays online.
    const raw = await connectedClient(clients, tb.url, { clientId: 'G1/edge-5:old', username: 'G1/edge-5', password: PASSWORD });
    const { encodeSparkplug } = await import('../../contracts/sparkplug/codec.js');
    await raw.publishAsync('spBv1.0/G1/NDEATH/edge-5', encodeSparkplug({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'UInt64', value: 41 }] }), { qos: 1 });
    await waitFor(() => host.counters().stale_deaths === 1, WAIT_MS, 'the stale NDEATH counted');
    expect(host.node('G1', 'edge-5')?.online).toBe(true);

    edge.cut();
    await waitFor(() => received('status', 'press-1', (payload) => payload.status === 'offline').length > 0, WAIT_MS, 'press-1 offline after the will NDEATH');
    const node = host.node('G1', 'edge-5');
    expect(node?.online).toBe(false);
    expect(node?.devices['press-1']?.online).toBe(false);
    expect(node?.devices['press-1']?.metrics.every((metric) => metric.stale)).toBe(true);
    expect(host.counters()).toMatchObject({ deaths: 1, stale_deaths: 1 });
  });

  it('writes a linewatch command as a DCMD and acks done when DDATA reports the written value; an unconfirmed write gets no ack', async () => {
    const host = await startHost();
    const edge = await startEdge('edge-6');
    await waitFor(() => received('status', 'press-1', (payload) => payload.status === 'online').length > 0, WAIT_MS, 'press-1 online');
    const now = Date.now();
    const command = { id: 'c-speed', action: 'set_speed', params: { speed: 32.5 }, origin: 'rule:test', ts: now, expiresAt: now + 60_000 };
    await tb.broker.bus.publish('lw/G1/press-1/cmd', JSON.stringify(command), { qos: 1 });
    const write = await waitFor(() => edge.dcmd[0], WAIT_MS, 'the DCMD write');
    expect(write.device).toBe('press-1');
    // By its alias alone (speedSetpoint is alias 4 in PRESS), as the spec has it.
    expect(write.payload.metrics?.map((metric) => ({ name: metric.name, alias: Number(metric.alias), type: metric.type, value: metric.value }))).toEqual([{ name: undefined, alias: 4, type: 'Float', value: 32.5 }]);
    expect(received('ack', 'press-1')).toEqual([]);

    edge.data('press-1', [{ alias: 4, type: 'Float', value: 32.5 }]);
    const ack = await waitFor(() => received('ack', 'press-1')[0], WAIT_MS, 'the done ack');
    expect(ack).toMatchObject({ id: 'c-speed', result: 'done' });

    // A command to a metric the device never confirms: written, never acked, forgotten after expiresAt.
    const stop = { id: 'c-stop', action: 'stop', params: {}, origin: 'rule:test', ts: Date.now(), expiresAt: Date.now() + 500 };
    await tb.broker.bus.publish('lw/G1/press-1/cmd', JSON.stringify(stop), { qos: 1 });
    await waitFor(() => edge.dcmd.length === 2, WAIT_MS, 'the stop write');
    expect(edge.dcmd[1]?.payload.metrics?.map((metric) => [Number(metric.alias), metric.value])).toEqual([[5, false]]);
    edge.data('press-1', [{ alias: 5, type: 'Boolean', value: true }]);
    await waitFor(() => host.counters().commands_unconfirmed === 1, WAIT_MS, 'the unconfirmed write forgotten');
    expect(received('ack', 'press-1').map((payload) => payload.id)).toEqual(['c-speed']);

    // A command the device cannot take: rejected at once, with the reason.
    const strategy = { id: 'c-strategy', action: 'set_strategy', params: { strategy: 'safe' }, origin: 'rule:test', ts: Date.now(), expiresAt: Date.now() + 60_000 };
    await tb.broker.bus.publish('lw/G1/press-1/cmd', JSON.stringify(strategy), { qos: 1 });
    const rejected = await waitFor(() => received('ack', 'press-1', (payload) => payload.id === 'c-strategy')[0], WAIT_MS, 'the rejection');
    expect(rejected).toMatchObject({ result: 'rejected', reason: expect.stringContaining('strategy') });
    expect(host.counters()).toMatchObject({ commands_confirmed: 1, commands_rejected: 1 });
  });
});
