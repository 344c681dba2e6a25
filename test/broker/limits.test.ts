// The limits Aedes lacks: max packet size enforced before buffering (aedes#831), garbage bytes,
// max connections, connect timeout. Raw sockets, since no MQTT library sends such things.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { closed, encodeRemainingLength, mqttConnect, openSocket, publishPacket, subscribePacket } from './raw-mqtt.js';

const MiB = 1024 * 1024;
const DECLARED = 200 * MiB; // what the attacker's PUBLISH header claims
const SENT = 32 * MiB; // what it actually sends before giving up

/** A PUBLISH fixed header declaring `remaining` bytes, followed by the topic. */
function hugePublishHeader(remaining: number): Buffer {
  return Buffer.from([0x30, ...encodeRemainingLength(remaining), 0, 1, 0x78]);
}

/** Writes the header and then up to SENT bytes of body while the socket stays open; returns bytes written. */
async function sendOversized(socket: Socket): Promise<number> {
  const chunk = Buffer.alloc(MiB, 0x61);
  let written = 0;
  let open = true;
  socket.once('close', () => (open = false));
  socket.write(hugePublishHeader(DECLARED));
  while (open && written < SENT) {
    written += chunk.length;
    if (!socket.write(chunk)) {
      await Promise.race([new Promise((r) => socket.once('drain', r)), new Promise((r) => socket.once('close', r)), sleep(2000)]);
    }
  }
  return written;
}

function rssOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.replace(/\D/g, '')) * 1024;
}

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker({ open: true, wsPort: null, maxPacketBytes: 256 * 1024, maxConnections: 20, connectTimeoutMs: 300 });
});
afterAll(async () => {
  await tb?.stop();
});

let child: ChildProcess | undefined;
afterEach(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
});

describe('max packet size (aedes#831)', () => {
  it('bare Aedes buffers the body of a packet declaring 200 MiB (the reference)', async () => {
    child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/bare-aedes.mjs', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await withTimeout(
      new Promise<number>((resolve) => child!.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())))),
      10_000,
      'the bare Aedes child to print its port',
    );
    const { socket } = await mqttConnect(port, 'big-sender');
    const before = rssOf(child.pid!);
    const written = await sendOversized(socket);
    await sleep(300);
    const growth = rssOf(child.pid!) - before;
    socket.destroy();
    expect(written).toBe(SENT); // it never closed the connection
    expect(growth).toBeGreaterThan(SENT / 2); // and kept most of what it got
  });

  it('our broker closes the connection at the header, without buffering the body', async () => {
    const { socket } = await mqttConnect(tb.broker.ports.mqtt, 'big-sender');
    const before = process.memoryUsage().arrayBuffers;
    const written = await sendOversized(socket);
    await closed(socket, 5000, 'the broker to close the oversized connection');
    const growth = process.memoryUsage().arrayBuffers - before;
    expect(written).toBeLessThan(SENT); // closed before the sender got everything out
    expect(growth).toBeLessThan(4 * MiB);
    expect(tb.broker.stats().rejects.oversize_packet).toBe(1);
  });

  it('still accepts a packet just under the limit', async () => {
    const client = await mqtt.connectAsync(tb.url, { clientId: 'big-but-ok' });
    try {
      await client.subscribeAsync('big/ok');
      const got = withTimeout(new Promise<Buffer>((r) => client.once('message', (_t, p) => r(p))), 5000, 'the 200 KiB message');
      await client.publishAsync('big/ok', Buffer.alloc(200 * 1024, 1));
      expect((await got).length).toBe(200 * 1024);
    } finally {
      await client.endAsync();
    }
  });
});

describe('drain timeout', () => {
  it('disconnects a subscriber that stops reading, once, and the others keep receiving', async () => {
    const slowBroker = await startTestBroker({ open: true, wsPort: null, drainTimeoutMs: 300 });
    try {
      const port = slowBroker.broker.ports.mqtt;
      const frozen = await mqttConnect(port, 'frozen-subscriber');
      frozen.socket.write(subscribePacket('slow/x'));
      await sleep(200);
      frozen.socket.pause();
      const healthy = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'healthy' });
      let healthyGot = 0;
      healthy.on('message', () => healthyGot++);
      await healthy.subscribeAsync('slow/x');
      const { socket: pub } = await mqttConnect(port, 'slow-publisher');
      const batch = Buffer.concat(Array.from({ length: 1000 }, () => publishPacket('slow/x', Buffer.alloc(512, 0x63))));
      // (A socket that never reads does not see the broker close it either, so ask the broker.)
      const deadline = Date.now() + 15_000;
      while (slowBroker.broker.stats().rejects.slow_consumer === 0 && Date.now() < deadline) {
        if (!pub.writableNeedDrain) pub.write(batch);
        await sleep(10);
      }
      frozen.socket.destroy();
      const before = healthyGot;
      await waitFor(() => healthyGot > before, 10_000, 'the healthy subscriber to keep receiving');
      expect(slowBroker.broker.stats().rejects.slow_consumer).toBe(1);
      pub.destroy();
      await healthy.endAsync(true);
    } finally {
      await slowBroker.stop();
    }
  }, 60_000);
});

describe('bad input on the socket', () => {
  it('closes a connection that sends bytes that are not MQTT, counts it, and goes on serving', async () => {
    const before = tb.broker.stats().rejects.malformed_packet;
    const http = await openSocket(tb.broker.ports.mqtt);
    http.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await closed(http, 5000, 'the broker to close the HTTP connection');
    const { socket } = await mqttConnect(tb.broker.ports.mqtt, 'then-garbage');
    socket.write(Buffer.from([0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x13, 0x37]));
    await closed(socket, 5000, 'the broker to close the garbage connection');
    await waitFor(() => tb.broker.stats().rejects.malformed_packet >= before + 2, 2000, 'both to be counted');
    const client = await mqtt.connectAsync(tb.url, { clientId: 'after-garbage' });
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it('closes a connection that sends no CONNECT within connectTimeoutMs', async () => {
    const before = tb.broker.stats().rejects.connect_timeout;
    const silent = await openSocket(tb.broker.ports.mqtt);
    await closed(silent, 5000, 'the broker to time out the silent connection');
    expect(tb.broker.stats().rejects.connect_timeout).toBe(before + 1);
  });

  it('refuses connections past maxConnections', async () => {
    await waitFor(() => tb.broker.stats().connections === 0, 5000, 'earlier connections to close');
    // Established sessions, so connectTimeoutMs does not close them meanwhile.
    const sessions = await Promise.all(Array.from({ length: 20 }, (_, i) => mqttConnect(tb.broker.ports.mqtt, `holder-${i}`)));
    await waitFor(() => tb.broker.stats().connections === 20, 5000, '20 open connections');
    const extra = await openSocket(tb.broker.ports.mqtt);
    await closed(extra, 5000, 'the broker to close the 21st connection');
    expect(tb.broker.stats().rejects.max_connections).toBe(1);
    for (const s of sessions) s.socket.destroy();
  });
});
