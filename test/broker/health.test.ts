// The broker's health(): down while it does not listen (before start, stopping, stopped),
// degraded while backpressure holds publishers back or connections near broker.maxConnections —
// each state reached for real, on a real broker with real sockets.
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerService, brokerConfigSchema } from '../../broker/index.js';
import { waitFor } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { mqttConnect, publishPacket, subscribeAndWait } from './raw-mqtt.js';
import { roleGrants } from '../../config/services.js';

const brokers: TestBroker[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const broker of brokers.splice(0)) await broker.stop();
});

async function testBroker(overrides: Parameters<typeof startTestBroker>[0]): Promise<TestBroker> {
  const broker = await startTestBroker({ open: true, wsPort: null, ...overrides });
  brokers.push(broker);
  return broker;
}

describe('broker health()', () => {
  it('is down before start, ok while it listens, down while it stops and once stopped', async () => {
    const broker = new BrokerService(brokerConfigSchema.parse({ host: '127.0.0.1', persistence: 'memory', port: 0, wsPort: null, open: true }), { roles: roleGrants() });
    expect(broker.name).toBe('broker');
    expect(broker.health()).toEqual({ status: 'down', reasons: ['not started'] });
    await broker.start();
    try {
      expect(broker.health()).toEqual({ status: 'ok', reasons: [] });
    } finally {
      const stopped = broker.stop();
      expect(broker.health()).toEqual({ status: 'down', reasons: [expect.stringMatching(/^stopping/)] });
      await stopped;
    }
    expect(broker.health()).toEqual({ status: 'down', reasons: [expect.stringMatching(/^stopped/)] });
  });

  it('is degraded with connections near broker.maxConnections, ok again when they close', async () => {
    const tb = await testBroker({ maxConnections: 10 });
    const port = tb.broker.ports.mqtt;
    // Established sessions, so connectTimeoutMs does not close them meanwhile.
    for (let index = 0; index < 8; index++) sockets.push((await mqttConnect(port, `near-${index}`)).socket);
    await waitFor(() => tb.broker.stats().connections === 8, 5000, '8 open connections');
    expect(tb.broker.health().status).toBe('ok');
    sockets.push((await mqttConnect(port, 'near-8')).socket);
    await waitFor(() => tb.broker.stats().connections === 9, 5000, '9 open connections');
    expect(tb.broker.health()).toEqual({ status: 'degraded', reasons: ['9 connections open of broker.maxConnections 10: further ones are refused at the limit'] });
    expect(tb.broker.counters()).toMatchObject({ connections_open: 9 });
    expect(tb.broker.gauges.has('connections_open')).toBe(true);

    for (const socket of sockets.splice(0)) socket.destroy();
    await waitFor(() => tb.broker.health().status === 'ok', 5000, 'the broker to be healthy again');
  });

  it('is degraded while backpressure holds publishers back, ok again once deliveries caught up', async () => {
    const tb = await testBroker({ maxPendingDeliveries: 100, drainTimeoutMs: 60_000 });
    const port = tb.broker.ports.mqtt;
    const frozen = await mqttConnect(port, 'frozen');
    sockets.push(frozen.socket);
    await subscribeAndWait(frozen.socket, 'health/x'); // under load a fixed sleep may end before the subscription exists
    frozen.socket.pause(); // a subscriber that stops reading: deliveries back up
    // Four publishers flooding, as in backpressure.test.ts; health is sampled every millisecond,
    // as the pause can be short on a loaded machine (it lifts once the backlog halves).
    const publishers = await Promise.all([0, 1, 2, 3].map((i) => mqttConnect(port, `health-publisher-${i}`)));
    for (const { socket } of publishers) sockets.push(socket);
    const batch = Buffer.concat(Array.from({ length: 1000 }, () => publishPacket('health/x', Buffer.alloc(64, 0x62))));
    const health = await waitFor(
      () => {
        const now = tb.broker.health();
        if (now.status !== 'ok') return now;
        for (const { socket } of publishers) if (!socket.writableNeedDrain) socket.write(batch);
        return undefined;
      },
      40_000,
      'the broker to hold publishers back',
      1,
    );
    expect(health.status).toBe('degraded');
    expect(health.reasons).toEqual([expect.stringMatching(/^backpressure: reading nothing from publishers while \d+ deliveries wait \(more than broker.maxPendingDeliveries, 100\)$/)]);
    expect(tb.broker.counters()).toMatchObject({ reading_paused: 1 });

    frozen.socket.destroy(); // the subscriber goes away: the backlog drains
    await waitFor(() => tb.broker.health().status === 'ok', 20_000, 'the broker to read from publishers again');
    expect(tb.broker.counters()).toMatchObject({ reading_paused: 0 });
  }, 90_000);
});
