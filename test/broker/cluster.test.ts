// Two `linewatch broker --cluster` processes on one real redis-server (test/harness/redis.ts)
// behave as one broker: a message published on A reaches a subscriber on B at QoS 0, 1 and 2; a
// retained message published on A is read on B; the will of a client of a SIGKILLed node is
// published by the other, unless that client has come back on the other node meanwhile; a
// persistent session moves with its client from one node to the other and gets what was queued
// for it meanwhile.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startBrokerProcess, type BrokerProcess } from '../harness/broker-process.js';
import { connectedClient } from '../harness/mqtt-client.js';
import { startTestRedis, type TestRedis } from '../harness/redis.js';

let dir: string;
let redis: TestRedis;
let configFile: string;
const nodes: BrokerProcess[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lw-cluster-'));
  redis = await startTestRedis();
  // A short heartbeat so that a dead node's wills are published within seconds (3× to be judged dead, checked every 4×).
  configFile = join(dir, 'linewatch.yaml');
  writeFileSync(configFile, 'broker:\n  heartbeatMs: 1000\n');
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

function collect(client: MqttClient): string[] {
  const received: string[] = [];
  client.on('message', (topic, payload, packet) => received.push(`${topic} ${payload.toString()} qos=${packet.qos}${packet.retain ? ' retain' : ''}`));
  return received;
}

describe('linewatch broker --cluster: two nodes on one Redis', () => {
  let nodeA: BrokerProcess;
  let nodeB: BrokerProcess;

  beforeAll(async () => {
    nodeA = await node();
    nodeB = await node();
  }, 90_000);

  it('delivers a publish on A to a subscriber on B at QoS 0, 1 and 2', async () => {
    const subscriber = await connected(nodeB.url, { clientId: 'sub-b' });
    const received = collect(subscriber);
    await subscriber.subscribeAsync('lw/cross/#', { qos: 2 });
    const publisher = await connected(nodeA.url, { clientId: 'pub-a' });
    for (const qos of [0, 1, 2] as const) await withTimeout(publisher.publishAsync(`lw/cross/q${qos}`, `m${qos}`, { qos }), 10_000, `the QoS ${qos} publish on A`);
    await waitFor(() => received.length >= 3, 15_000, 'the three messages on B');
    expect(received.sort()).toEqual(['lw/cross/q0 m0 qos=0', 'lw/cross/q1 m1 qos=1', 'lw/cross/q2 m2 qos=2']);
  });

  it('has a retained message published on A for a subscriber on B', async () => {
    const publisher = await connected(nodeA.url, { clientId: 'retain-a' });
    await withTimeout(publisher.publishAsync('lw/retained/x', 'kept', { qos: 1, retain: true }), 10_000, 'the retained publish on A');
    const reader = await connected(nodeB.url, { clientId: 'retain-b' });
    const received = collect(reader);
    await reader.subscribeAsync('lw/retained/#', { qos: 1 });
    await waitFor(() => received.length >= 1, 10_000, 'the retained message on B');
    expect(received).toEqual(['lw/retained/x kept qos=1 retain']);
  });

  it('moves a persistent session from A to B with what was queued while its client was away', async () => {
    const first = await connected(nodeA.url, { clientId: 'roamer', clean: false });
    await first.subscribeAsync('lw/roam/#', { qos: 1 });
    await first.endAsync();
    const publisher = await connected(nodeA.url, { clientId: 'roam-pub' });
    for (const index of [1, 2, 3]) await withTimeout(publisher.publishAsync('lw/roam/e', `queued-${index}`, { qos: 1 }), 10_000, 'a queued publish');
    const again = mqtt.connect(nodeB.url, { clientId: 'roamer', clean: false, reconnectPeriod: 0 });
    clients.push(again);
    const received = collect(again);
    const connack = await withTimeout(new Promise<mqtt.IConnackPacket>((resolve) => again.once('connect', resolve)), 15_000, 'the roamer to connect to B');
    expect(connack.sessionPresent).toBe(true);
    await waitFor(() => received.length >= 3, 15_000, 'the three queued messages on B');
    expect(received).toEqual(['lw/roam/e queued-1 qos=1', 'lw/roam/e queued-2 qos=1', 'lw/roam/e queued-3 qos=1']);
    // And it is subscribed on B now: a new message reaches it live.
    await withTimeout(publisher.publishAsync('lw/roam/e', 'live', { qos: 1 }), 10_000, 'the live publish');
    await waitFor(() => received.length >= 4, 10_000, 'the live message on B');
    expect(received[3]).toBe('lw/roam/e live qos=1');
  });

  // Last: it kills node A. Two clients with a will (their retained `offline` status) on A: one
  // never comes back, the other reconnects to B right after the kill, before B judges A dead.
  it('publishes the will of a client of a SIGKILLed node from the other node, but not the will of a client that came back on it', async () => {
    const watcher = await connected(nodeB.url, { clientId: 'will-watcher' });
    const received = collect(watcher);
    await watcher.subscribeAsync('lw/status/#', { qos: 1 });
    const offline = (clientId: string): mqtt.IClientOptions['will'] => ({ topic: `lw/status/${clientId}`, payload: Buffer.from('offline'), qos: 1, retain: true });
    await connected(nodeA.url, { clientId: 'doomed', will: offline('doomed') });
    await connected(nodeA.url, { clientId: 'back', will: offline('back') });
    // A's broker id, from the keys its wills are stored under (will:<broker id>:<client id>).
    const willKeys = async (): Promise<string[]> => (await redis.command('LRANGE', 'will', 0, -1)) as string[];
    const doomedKey = await waitFor(async () => (await willKeys()).find((key) => key.endsWith(':doomed')), 10_000, 'the will of doomed stored by A');
    const nodeAId = doomedKey.split(':')[1];
    expect(await nodeA.kill('SIGKILL')).toBeNull();
    const returned = await connected(nodeB.url, { clientId: 'back', will: offline('back') });
    await withTimeout(returned.publishAsync('lw/status/back', 'online', { qos: 1, retain: true }), 10_000, 'back publishing online on B');
    await waitFor(() => received.includes('lw/status/doomed offline qos=1'), 30_000, 'the will of the client of the killed node, published by B');
    // B has gone through A's wills once none is left under A's id (it deletes each after publishing it).
    await waitFor(async () => !(await willKeys()).some((key) => key.startsWith(`will:${nodeAId}:`)), 30_000, `no will left under A's id (${nodeAId})`);
    // A fence: a message published on B after those wills reaches the watcher after them.
    const fence = await connected(nodeB.url, { clientId: 'fence' });
    await withTimeout(fence.publishAsync('lw/status/fence', 'done', { qos: 1 }), 10_000, 'the fence publish on B');
    await waitFor(() => received.includes('lw/status/fence done qos=1'), 10_000, 'the fence on the watcher');
    expect(received.filter((line) => line.startsWith('lw/status/back'))).toEqual(['lw/status/back online qos=1']);
    // And what a dashboard reads now: back is online.
    const reader = await connected(nodeB.url, { clientId: 'status-reader' });
    const statuses = collect(reader);
    await reader.subscribeAsync('lw/status/back', { qos: 1 });
    await waitFor(() => statuses.length >= 1, 10_000, 'the retained status of back');
    expect(statuses).toEqual(['lw/status/back online qos=1 retain']);
  }, 90_000);
});
