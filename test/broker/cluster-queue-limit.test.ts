// The session queue limit in a cluster: Aedes queues a message for a persistent session on the
// node where it was published, but the PUBACK that removes it is handled on the subscriber's node,
// so a count kept in one node's memory only grows on the publisher's node. Two `linewatch broker
// --cluster` processes on one real redis-server, `broker.sessionQueue.maxMessages` 5: a persistent
// subscriber on B, online and acknowledging, gets every one of 20 QoS 1 messages published on A,
// and A drops none (`session_queue_dropped` on its /metrics).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startBrokerProcess, type BrokerProcess } from '../harness/broker-process.js';
import { connectedClient } from '../harness/mqtt-client.js';
import { startTestRedis, type TestRedis } from '../harness/redis.js';

const MAX_MESSAGES = 5;
const SENT = 4 * MAX_MESSAGES;

let dir: string;
let redis: TestRedis;
let configFile: string;
const nodes: BrokerProcess[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lw-cluster-limit-'));
  redis = await startTestRedis();
  configFile = join(dir, 'linewatch.yaml');
  writeFileSync(configFile, `broker:\n  sessionQueue:\n    maxMessages: ${MAX_MESSAGES}\n`);
});

afterAll(async () => {
  for (const client of clients) client.end(true);
  for (const node of nodes) await node.kill('SIGKILL').catch(() => undefined);
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function node(): Promise<BrokerProcess> {
  const started = await startBrokerProcess(['--open', '--config', configFile, '--cluster', redis.url], dir);
  nodes.push(started);
  return started;
}

function connected(url: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return connectedClient(clients, url, options);
}

/** A metric's value from a node's /metrics (the health address it printed). */
async function metric(broker: BrokerProcess, name: string): Promise<number> {
  const healthUrl = /health: \/healthz and \/metrics at (http:\/\/127\.0\.0\.1:\d+)/.exec(broker.output())?.[1];
  if (!healthUrl) throw new Error(`the broker printed no health address: ${broker.output()}`);
  const text = await withTimeout(fetch(`${healthUrl}/metrics`).then((response) => response.text()), 10_000, `${healthUrl}/metrics`);
  const line = text.split('\n').find((candidate) => new RegExp(`^\\S*${name}(\\{[^}]*\\})? `).test(candidate));
  if (!line) throw new Error(`no ${name} in ${healthUrl}/metrics: ${text}`);
  return Number(line.split(' ').at(-1));
}

describe('linewatch broker --cluster with broker.sessionQueue.maxMessages', () => {
  it(`drops nothing for an acknowledging persistent subscriber on B when A publishes ${SENT} messages over a limit of ${MAX_MESSAGES}`, async () => {
    const nodeA = await node();
    const nodeB = await node();
    const subscriber = await connected(nodeB.url, { clientId: 'limited-sub', clean: false });
    const received: string[] = [];
    subscriber.on('message', (_topic, payload) => received.push(payload.toString()));
    let closed = 0;
    subscriber.on('close', () => closed++);
    await subscriber.subscribeAsync('lw/limit/#', { qos: 1 });
    const publisher = await connected(nodeA.url, { clientId: 'limited-pub' });
    const sent: string[] = [];
    for (let index = 0; index < SENT; index++) {
      const payload = `m${index}`;
      await withTimeout(publisher.publishAsync('lw/limit/e', payload, { qos: 1 }), 10_000, `publish ${payload} on A`);
      sent.push(payload);
      // Acknowledged before the next: the subscriber's queue never holds more than one.
      await waitFor(() => received.includes(payload), 10_000, `${payload} on the subscriber on B`);
    }
    expect(received).toEqual(sent);
    expect(closed).toBe(0);
    expect(await metric(nodeA, 'session_queue_dropped')).toBe(0);
    expect(await metric(nodeB, 'session_queue_dropped')).toBe(0);
    // And each node said so once at start.
    for (const broker of [nodeA, nodeB]) expect(broker.output().split('broker.sessionQueue is not enforced in a cluster').length - 1).toBe(1);
  }, 90_000);
});
