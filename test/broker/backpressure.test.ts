// Backpressure: while deliveries back up, the broker stops reading from client sockets (TCP then
// slows the publisher down) and its memory stays bounded; it reads again once it caught up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../../lib/wait.js';
import { roundTrip, startTestBroker, type TestBroker } from '../harness/broker.js';
import { mqttConnect, publishPacket, subscribePacket } from './raw-mqtt.js';

const MiB = 1024 * 1024;

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker({ open: true, wsPort: null, maxPendingDeliveries: 200, drainTimeoutMs: 60_000 });
});
afterAll(async () => {
  await tb?.stop();
});

describe('backpressure', () => {
  it('stops reading from publishers while a frozen subscriber holds up deliveries, then resumes', async () => {
    const port = tb.broker.ports.mqtt;
    const frozen = await mqttConnect(port, 'frozen');
    frozen.socket.write(subscribePacket('bp/x'));
    await sleep(200);
    frozen.socket.pause();

    const publishers = await Promise.all([0, 1, 2, 3].map((i) => mqttConnect(port, `bp-pub-${i}`)));
    const batch = Buffer.concat(Array.from({ length: 1000 }, () => publishPacket('bp/x', Buffer.alloc(64, 0x62))));
    const memoryBefore = process.memoryUsage().arrayBuffers;
    let offered = 0;
    // Each publisher writes while its socket accepts data, for at most 64 MiB in all or 3 s.
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && offered < 64 * MiB) {
      for (const { socket } of publishers) {
        if (!socket.writableNeedDrain) {
          socket.write(batch);
          offered += batch.length;
        }
      }
      await sleep(5);
    }
    const stalled = publishers.filter(({ socket }) => socket.writableNeedDrain).length;
    const growth = process.memoryUsage().arrayBuffers - memoryBefore;
    expect(tb.broker.stats().publisherPauses).toBeGreaterThan(0);
    expect(stalled).toBeGreaterThan(0); // TCP pushed back on the publishers
    expect(growth).toBeLessThan(48 * MiB); // the broker did not take everything in

    frozen.socket.destroy(); // the subscriber goes away: the backlog can drain
    await waitFor(() => publishers.every(({ socket }) => socket.writableLength === 0), 20_000, 'the publishers to be read to the end');
    for (const p of publishers) p.socket.destroy();

    expect(await roundTrip(tb.url, 'after-backpressure', 'bp/after', 'flowing', 10_000)).toBe('flowing');
  }, 60_000);
});
