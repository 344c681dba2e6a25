// aedes#193: `RangeError: Maximum call stack size exceeded` (mqemitter released/_do → qlobber)
// shortly after a subscriber holding a large backlog disconnects. Reproduced on a bare Aedes in a
// child process (it dies), then the same scenario against our broker (it survives), then the
// cause in isolation: a backlog of messages nobody listens to, drained by mqemitter.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import mqemitter from 'mqemitter';
import { afterEach, describe, expect, it } from 'vitest';
import { createSafeMq } from '../../broker/safe-mq.js';
import { sleep, waitFor, withTimeout } from '../../lib/wait.js';
import { roundTrip, startTestBroker, type TestBroker } from '../harness/broker.js';
import { mqttConnect, publishPacket, subscribePacket } from './raw-mqtt.js';

const BARE_AEDES = fileURLToPath(new URL('./fixtures/bare-aedes.mjs', import.meta.url));

/**
 * A slow subscriber that stops reading, `publishers` clients each writing `batches` × 1000 QoS 0
 * publishes at socket speed, then the subscriber's socket is destroyed. What matters for the
 * crash is the backlog queued in the broker at that moment: each publisher has one read chunk
 * (~900 packets) in flight, so 20 publishers queue ~18 000 messages behind the frozen subscriber.
 */
async function floodThenKill(port: number, publishers = 20, batches = 10, floodMs = 1000): Promise<void> {
  const slow = await mqttConnect(port, 'slow-subscriber');
  slow.socket.write(subscribePacket('flood/x'));
  await sleep(200);
  slow.socket.pause(); // stops reading: the broker's writes to it block once the socket buffers are full
  const pubs = await Promise.all(Array.from({ length: publishers }, (_, i) => mqttConnect(port, `flooder-${i}`)));
  const batch = Buffer.concat(Array.from({ length: 1000 }, () => publishPacket('flood/x', Buffer.alloc(64, 0x61))));
  let flooding = true;
  const pump = (socket: (typeof pubs)[number]['socket'], left = batches): void => {
    while (flooding && !socket.destroyed && left-- > 0) {
      if (!socket.write(batch)) {
        socket.once('drain', () => pump(socket, left));
        return;
      }
    }
  };
  for (const p of pubs) pump(p.socket);
  await sleep(floodMs);
  flooding = false;
  slow.socket.destroy();
  await sleep(1000); // the crash comes 0.1–0.2 s after the disconnect
  for (const p of pubs) p.socket.destroy();
}

let child: ChildProcess | undefined;
let testBroker: TestBroker | undefined;
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  await testBroker?.stop();
  testBroker = undefined;
});

describe('aedes#193 flood-then-kill', () => {
  it('kills a bare Aedes 1.2.0 (the reference this fix is for)', async () => {
    child = spawn(process.execPath, [BARE_AEDES], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    const port = await withTimeout(
      new Promise<number>((resolve) => child!.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())))),
      10_000,
      'the bare Aedes child to print its port',
    );
    await floodThenKill(port).catch(() => undefined); // its sockets die with it
    const code = await withTimeout(exited, 10_000, 'the bare Aedes child to crash');
    expect(code).not.toBe(0);
    expect(stderr).toContain('Maximum call stack size exceeded');
  }, 60_000);

  it('does not kill our broker, which goes on serving', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      testBroker = await startTestBroker({ open: true, wsPort: null });
      await floodThenKill(testBroker.broker.ports.mqtt);
      const mq = testBroker.broker.aedes as unknown as { mq: { length: number } };
      await waitFor(() => mq.mq.length === 0, 30_000, 'the backlog to drain');
      expect(uncaught).toEqual([]);
      expect(await roundTrip(testBroker.url, 'after-the-flood', 'still/alive', 'yes', 5000)).toBe('yes');
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  }, 60_000);
});

describe('the cause, in mqemitter alone', () => {
  /** Holds the only delivery slot, queues `n` messages on a topic with no listener, then frees the slot. */
  function drainBacklog(mq: mqemitter.MQEmitter, n: number): Promise<number[]> {
    return new Promise((resolve, reject) => {
      let release: () => void = () => undefined;
      mq.on('held', (_m, done) => (release = done));
      mq.emit({ topic: 'held' });
      const order: number[] = [];
      for (let i = 0; i < n; i++) {
        mq.emit({ topic: 'nobody/listens', i }, () => {
          order.push(i);
          if (order.length === n) resolve(order);
        });
      }
      setImmediate(() => {
        try {
          release(); // drains the whole backlog from here
        } catch (err) {
          reject(err as Error);
        }
      });
    });
  }

  it('plain mqemitter 7.1.0 overflows the stack draining 50 000 queued messages', async () => {
    const mq = mqemitter({ concurrency: 1 });
    await expect(drainBacklog(mq, 50_000)).rejects.toThrow(/Maximum call stack size exceeded/);
  });

  it('our mq drains the same backlog, every message once and in order', async () => {
    const order = await withTimeout(drainBacklog(createSafeMq({ concurrency: 1 }), 50_000), 20_000, 'the backlog to drain');
    expect(order.length).toBe(50_000);
    expect(order.every((v, i) => v === i)).toBe(true);
  });

  it('keeps order when several slots free at once and one drain is continued on a fresh stack', async () => {
    // Four deliveries hold every slot; freeing them in one turn starts four drains, the first of
    // which goes deeper than MAX_SYNC_DEPTH and continues later. The others must not overtake it.
    const mq = createSafeMq({ concurrency: 4 });
    const releases: (() => void)[] = [];
    mq.on('held', (_m, done) => releases.push(done));
    for (let i = 0; i < 4; i++) mq.emit({ topic: 'held' });
    const n = 1000;
    const order: number[] = [];
    const drained = new Promise<void>((resolve) => {
      for (let i = 0; i < n; i++) {
        mq.emit({ topic: 'nobody/listens', i }, () => {
          order.push(i);
          if (order.length === n) resolve();
        });
      }
    });
    await new Promise((r) => setImmediate(r));
    expect(releases).toHaveLength(4);
    for (const release of releases) release();
    await withTimeout(drained, 10_000, 'the backlog to drain');
    expect(order).toEqual(Array.from({ length: n }, (_, i) => i));
  });
});
