// `linewatch broker --persistence redis` keeps what it accepted through a SIGKILL: a persistent
// subscriber's queued QoS 1 message and a retained message are there after the broker — and, in
// the second test, its managed redis-server too — was killed and started again on the same data
// dir. The leftover redis-server of the killed broker is found and stopped, not doubled.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leftoverPid } from '../../broker/redis-server.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startBrokerProcess, type BrokerProcess } from '../harness/broker-process.js';

let dir: string;
const running: BrokerProcess[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lw-redis-restart-'));
});

afterAll(async () => {
  for (const broker of running) await broker.kill('SIGTERM').catch(() => undefined);
  for (const sub of ['a', 'b']) {
    const pid = leftoverPid(join(dir, sub, 'redis'));
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
});

async function connected(url: string, options: mqtt.IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  await withTimeout(new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  }), 15_000, `an MQTT connection to ${url}`);
  return client;
}

async function brokerOn(dataDir: string): Promise<BrokerProcess> {
  const broker = await startBrokerProcess(['--open', '--persistence', 'redis', '--data-dir', dataDir], dir);
  running.push(broker);
  return broker;
}

/** What survives is checked the same way in both tests. */
async function leaveStateThenKill(dataDir: string, alsoKillRedis: boolean): Promise<BrokerProcess> {
  const first = await brokerOn(dataDir);
  const subscriber = await connected(first.url, { clientId: 'persist-sub', clean: false });
  await withTimeout(subscriber.subscribeAsync('lw/test/queued', { qos: 1 }), 10_000, 'the persistent subscription');
  await subscriber.endAsync();
  const publisher = await connected(first.url, { clientId: 'pub-1' });
  await withTimeout(publisher.publishAsync('lw/test/queued', 'queued-1', { qos: 1 }), 10_000, 'the PUBACK of the queued message');
  await withTimeout(publisher.publishAsync('lw/test/retained', 'retained-1', { qos: 1, retain: true }), 10_000, 'the PUBACK of the retained message');
  await publisher.endAsync();
  const redisDir = join(dataDir, 'redis');
  const redisPid = leftoverPid(redisDir);
  expect(redisPid, 'the managed redis-server runs with its pid file').toBeDefined();
  expect(await first.kill('SIGKILL')).toBeNull();
  if (alsoKillRedis) {
    process.kill(redisPid!, 'SIGKILL');
    await waitFor(() => leftoverPid(redisDir) === undefined, 10_000, 'the SIGKILLed redis-server to be gone');
  } else {
    expect(leftoverPid(redisDir), 'the redis-server outlives the SIGKILLed broker').toBe(redisPid);
  }
  const second = await brokerOn(dataDir);
  if (!alsoKillRedis) await waitFor(() => /a redis-server left running by an earlier broker/.test(second.output()), 10_000, 'the restarted broker to log that it stopped the leftover redis-server');
  const newPid = leftoverPid(redisDir);
  expect(newPid).toBeDefined();
  expect(newPid).not.toBe(redisPid);
  return second;
}

async function expectStateKept(broker: BrokerProcess): Promise<void> {
  const received: string[] = [];
  const subscriber = mqtt.connect(broker.url, { clientId: 'persist-sub', clean: false, reconnectPeriod: 0 });
  subscriber.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`));
  await waitFor(() => received.includes('lw/test/queued queued-1'), 15_000, 'the queued QoS 1 message after the restart');
  await subscriber.endAsync();
  const reader = await connected(broker.url, { clientId: 'retained-reader' });
  const retained: string[] = [];
  reader.on('message', (topic, payload, packet) => retained.push(`${topic} ${payload.toString()} retain=${packet.retain}`));
  await reader.subscribeAsync('lw/test/#', { qos: 1 });
  await waitFor(() => retained.includes('lw/test/retained retained-1 retain=true'), 10_000, 'the retained message after the restart');
  await reader.endAsync();
}

describe('linewatch broker --persistence redis, SIGKILL and restart', () => {
  it('keeps a persistent subscriber\'s queued QoS 1 message and a retained message; the killed broker\'s redis-server is stopped, not doubled', async () => {
    const second = await leaveStateThenKill(join(dir, 'a'), false);
    await expectStateKept(second);
    expect(await second.kill('SIGTERM')).toBe(0);
    expect(leftoverPid(join(dir, 'a', 'redis')), 'a stopped broker stops its redis-server').toBeUndefined();
  }, 90_000);

  it('keeps them when its redis-server is SIGKILLed too (appendfsync everysec: the AOF write came before the answer)', async () => {
    const second = await leaveStateThenKill(join(dir, 'b'), true);
    await expectStateKept(second);
    expect(await second.kill('SIGTERM')).toBe(0);
  }, 90_000);
});
