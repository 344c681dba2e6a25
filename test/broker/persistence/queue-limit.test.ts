// broker.sessionQueue: a stopped persistent subscriber's queue stops at maxMessages (drop-newest),
// counted, in health and on $SYS, for the memory and the disk store; after a restart the disk
// store's queue counts against the limit from the first message.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { brokerConfigSchema, startBroker, type LinewatchBroker } from '../../../broker/index.js';
import { roleGrants } from '../../../config/services.js';
import { waitFor } from '../../../lib/wait.js';

const LIMIT = 50;
const WAIT_MS = 15_000;
const SUBSCRIBER = 'queue-sub';
const TOPIC = 'limit/t';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function brokerOn(dataDir: string, persistence: 'memory' | 'disk'): Promise<LinewatchBroker> {
  const config = brokerConfigSchema.parse({ host: '127.0.0.1', port: 0, wsPort: null, open: true, persistence, statsIntervalMs: 100, sessionQueue: { maxMessages: LIMIT } });
  const broker = await startBroker(config, { roles: roleGrants(), dataDir });
  cleanups.push(() => broker.stop());
  return broker;
}

const url = (broker: LinewatchBroker): string => `mqtt://127.0.0.1:${broker.ports.mqtt}`;

async function client(broker: LinewatchBroker, clientId: string, clean = true): Promise<MqttClient> {
  const connected = await mqtt.connectAsync(url(broker), { clientId, clean, reconnectPeriod: 0 });
  cleanups.push(() => connected.endAsync(true));
  return connected;
}

/** The persistent subscriber subscribes and leaves. */
async function subscribeAndLeave(broker: LinewatchBroker): Promise<void> {
  const subscriber = await client(broker, SUBSCRIBER, false);
  await subscriber.subscribeAsync(TOPIC, { qos: 1 });
  await subscriber.endAsync();
}

async function publish(broker: LinewatchBroker, from: number, count: number): Promise<void> {
  const publisher = await client(broker, `queue-pub-${from}`);
  // Every publish is acknowledged, whether it was queued for the full session or not.
  await Promise.all(Array.from({ length: count }, (_, i) => publisher.publishAsync(TOPIC, `m${from + i}`, { qos: 1 })));
  await publisher.endAsync();
}

/** The subscriber comes back and takes what was queued for it. */
async function drain(broker: LinewatchBroker, expected: number): Promise<string[]> {
  const got: string[] = [];
  const subscriber = mqtt.connect(url(broker), { clientId: SUBSCRIBER, clean: false, reconnectPeriod: 0 });
  cleanups.push(() => subscriber.endAsync(true));
  subscriber.on('message', (_topic, payload) => got.push(String(payload)));
  await waitFor(() => got.length >= expected, WAIT_MS, `${expected} queued messages at the returning subscriber`);
  return got;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-queue-limit-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe.each(['memory', 'disk'] as const)('broker.sessionQueue with persistence %s', (persistence) => {
  it('keeps the oldest maxMessages for an offline session, drops and counts the rest, is degraded naming the client and says so on $SYS', async () => {
    const broker = await brokerOn(tempDir(), persistence);
    const watcher = await client(broker, 'sys-watch');
    const sys = new Map<string, string>();
    watcher.on('message', (topic, payload) => sys.set(topic, String(payload)));
    await watcher.subscribeAsync('$SYS/linewatch/session_queue/#', { qos: 0 });
    await subscribeAndLeave(broker);
    await publish(broker, 0, LIMIT + 30);

    expect(broker.counters()).toMatchObject({ session_queue_dropped: 30, session_queue_messages: LIMIT, session_queues_full: 1 });
    const health = broker.health();
    expect(health.status).toBe('degraded');
    expect(health.reasons.join(' ')).toMatch(new RegExp(`1 session queue\\(s\\) full \\(${SUBSCRIBER}\\).*broker\\.sessionQueue\\.maxMessages ${LIMIT}`));
    await waitFor(() => sys.get('$SYS/linewatch/session_queue/dropped') === '30' && sys.get('$SYS/linewatch/session_queue/full_clients') === JSON.stringify([SUBSCRIBER]), WAIT_MS, 'the drops and the full session on $SYS');

    const got = await drain(broker, LIMIT);
    expect(got.sort()).toEqual(Array.from({ length: LIMIT }, (_, i) => `m${i}`).sort());
    await waitFor(() => broker.health().status === 'ok', WAIT_MS, 'health ok once the queue drained');
    expect(broker.counters()).toMatchObject({ session_queue_dropped: 30, session_queues_full: 0 });
  }, 60_000);
});

describe('broker.sessionQueue across a restart (disk)', () => {
  it('counts what the previous run queued against the limit', async () => {
    const dataDir = tempDir();
    const first = await brokerOn(dataDir, 'disk');
    await subscribeAndLeave(first);
    await publish(first, 0, 30);
    await first.stop();
    const second = await brokerOn(dataDir, 'disk');
    await publish(second, 30, 40);
    expect(second.counters()).toMatchObject({ session_queue_dropped: 20, session_queue_messages: LIMIT });
    const got = await drain(second, LIMIT);
    expect(got.sort()).toEqual(Array.from({ length: LIMIT }, (_, i) => `m${i}`).sort());
  }, 60_000);
});
