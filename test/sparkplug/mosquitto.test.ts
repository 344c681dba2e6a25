// The Sparkplug host against an external broker: a real Mosquitto (test/harness/mosquitto.ts)
// with Eclipse Tahu's sparkplug-client as an independent edge node on it, and the linewatch side
// on the embedded broker's bus. STATE birth and will, births, data, a command written as DCMD and
// confirmed by DDATA; and `linewatch up` with sparkplug.brokerUrl, whose simulated edge node must
// speak to that broker, where the host listens.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLine, type RunningLine } from '../../cli/up/compose.js';
import { parseConfig } from '../../config/load.js';
import { parseTopic } from '../../contracts/topics.js';
import { waitFor } from '../../lib/wait.js';
import { SparkplugHost, sparkplugConfigSchema } from '../../sparkplug/index.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { startTestMosquitto, type TestMosquitto } from '../harness/mosquitto.js';
import { connectedClient } from '../harness/mqtt-client.js';
import { TestEdge } from '../harness/sparkplug-edge.js';

const HOST_ID = 'lw-mosq-host';
const WAIT_MS = 10_000;

let mosquitto: TestMosquitto;
let tb: TestBroker;
const clients: MqttClient[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  [mosquitto, tb] = await Promise.all([startTestMosquitto(), startTestBroker({ wsPort: null })]);
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await Promise.all(clients.map((client) => client.endAsync(true)));
  await tb?.stop();
  await mosquitto?.stop();
});

describe('the Sparkplug host on Mosquitto', () => {
  it('publishes its STATE birth and will there, takes an independent edge node’s births and data, and confirms a command by DDATA', async () => {
    const lw: { topic: string; payload: Record<string, unknown> }[] = [];
    const stopWatching = await tb.broker.bus.subscribe('lw/#', (topic, payload) => void lw.push({ topic, payload: JSON.parse(payload.toString()) as Record<string, unknown> }));
    cleanups.push(stopWatching);
    const host = new SparkplugHost({ bus: tb.broker.bus, config: sparkplugConfigSchema.parse({ enabled: true, hostId: HOST_ID, brokerUrl: mosquitto.url }), mqtt: { url: mosquitto.url } });
    cleanups.push(() => host.stop());
    await host.start();
    // Subscribed after the birth: Mosquitto hands it over as retained.
    const observer = await connectedClient(clients, mosquitto.url, { clientId: 'observer' });
    const states: { online: boolean; timestamp: number; retain: boolean }[] = [];
    observer.on('message', (_topic, payload, packet) => states.push({ ...(JSON.parse(payload.toString()) as { online: boolean; timestamp: number }), retain: packet.retain }));
    await waitFor(() => host.counters().state_births === 1, WAIT_MS, 'the STATE birth published');
    await observer.subscribeAsync(`spBv1.0/STATE/${HOST_ID}`, { qos: 1 });
    const birth = await waitFor(() => states.find((state) => state.online), WAIT_MS, 'the STATE birth on Mosquitto');
    expect(birth.retain).toBe(true);

    const edge = new TestEdge({ url: mosquitto.url, group: 'P1', edge: 'edge-1', password: 'unused-on-mosquitto', devices: { 'oven-1': [
      { name: 'temperature', alias: 1, type: 'Double', value: 180 },
      { name: 'speedSetpoint', alias: 2, type: 'Float', value: 20 },
    ] } });
    cleanups.push(() => edge.stop());
    await edge.connected();
    const of = (kind: string): Record<string, unknown>[] => lw.filter((message) => parseTopic(message.topic)?.kind === kind && message.topic.startsWith('lw/P1/oven-1/')).map((message) => message.payload);
    await waitFor(() => of('status').some((payload) => payload.status === 'online'), WAIT_MS, 'oven-1 online on the linewatch side');
    edge.data('oven-1', [{ alias: 1, type: 'Double', value: 181.5 }]);
    await waitFor(() => of('telemetry').some((payload) => (payload.values as Record<string, number>).temperature === 181.5), WAIT_MS, 'the DDATA as telemetry');

    const now = Date.now();
    await tb.broker.bus.publish('lw/P1/oven-1/cmd', JSON.stringify({ id: 'c-mosq', action: 'set_speed', params: { speed: 31 }, origin: 'rule:test', ts: now, expiresAt: now + 60_000 }), { qos: 1 });
    const write = await waitFor(() => edge.dcmd[0], WAIT_MS, 'the DCMD on Mosquitto');
    expect(write.payload.metrics?.map((metric) => [Number(metric.alias), metric.value])).toEqual([[2, 31]]);
    edge.data('oven-1', [{ alias: 2, type: 'Float', value: 31 }]);
    await waitFor(() => of('ack').find((payload) => payload.id === 'c-mosq' && payload.result === 'done'), WAIT_MS, 'the command done');
    expect(host.counters()).toMatchObject({ births: 1, device_births: 1, commands_confirmed: 1, malformed: 0, rebirths_requested: 0 });

    // Cut the host's socket: Mosquitto publishes its will (same timestamp as the birth); it is born again.
    const internals = host as unknown as { client?: { stream?: { destroy?: () => void } } };
    if (typeof internals.client?.stream?.destroy !== 'function') throw new Error('SparkplugHost no longer keeps its MQTT.js client in `client`');
    internals.client.stream.destroy();
    const death = await waitFor(() => states.find((state) => !state.online), WAIT_MS, 'the STATE will from Mosquitto');
    expect(death.timestamp).toBe(birth.timestamp);
    await waitFor(() => states.some((state) => state.online && state.timestamp > birth.timestamp), WAIT_MS, 'a new STATE birth');
  }, 60_000);

  it('linewatch up with sparkplug.brokerUrl: the simulated edge node speaks to that broker, and the line arrives through the host', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lw-sparkplug-mosq-up-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const config = parseConfig({
      dataDir,
      broker: { host: '127.0.0.1', port: 0, wsPort: null, persistence: 'memory' },
      historian: { enabled: false },
      rules: { enabled: false },
      dashboard: { enabled: false },
      simulate: { speedup: 10 },
      sparkplug: { enabled: true, hostId: 'lw-mosq-up', brokerUrl: mosquitto.url },
    });
    const said: string[] = [];
    const running: RunningLine = await startLine(config, { say: (message) => said.push(message), serial: false });
    cleanups.push(() => running.stop());
    const seen = new Set<string>();
    await running.broker.bus.subscribe('lw/A/+/telemetry', (topic) => void seen.add(topic));
    const host = running.services.find((service) => service.name === 'sparkplug');
    await waitFor(() => seen.has('lw/A/conv-2/telemetry'), 20_000, `conv-2's telemetry through the host on Mosquitto; said ${JSON.stringify(said)}; host ${JSON.stringify(host?.counters())}`);
    expect(host?.counters()).toMatchObject({ births: 1, malformed: 0 });
    expect(said.some((message) => message.includes(`as Sparkplug edge node A/edge on ${mosquitto.url}`))).toBe(true);
  }, 60_000);
});
