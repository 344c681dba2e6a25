// The broker's listeners and in-process bus, in open mode: TCP, WebSocket, Bus ↔ network.
import mqtt from 'mqtt';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { connectPacket } from './raw-mqtt.js';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker({ open: true });
});
afterAll(async () => {
  await tb?.stop();
});

function nextMessage(client: mqtt.MqttClient, what: string): Promise<{ topic: string; payload: string }> {
  return withTimeout(
    new Promise((resolve) => client.once('message', (topic, payload) => resolve({ topic, payload: payload.toString() }))),
    5000,
    what,
  );
}

describe('listeners', () => {
  it('binds free ports when asked for port 0', () => {
    expect(tb.broker.ports.mqtt).toBeGreaterThan(0);
    expect(tb.broker.ports.ws).toBeGreaterThan(0);
    expect(tb.broker.ports.tls).toBeNull();
  });

  it('carries a message from a WebSocket client to a TCP client and to the in-process bus', async () => {
    const tcp = await mqtt.connectAsync(tb.url, { clientId: 'tcp-sub' });
    const ws = await mqtt.connectAsync(tb.wsUrl!, { clientId: 'ws-pub' });
    const onBus: string[] = [];
    const unsubscribe = await tb.broker.bus.subscribe('dev/#', (topic, payload) => {
      onBus.push(`${topic}=${payload.toString()}`);
    });
    try {
      await tcp.subscribeAsync('dev/x', { qos: 1 });
      const received = nextMessage(tcp, 'the message over TCP');
      await ws.publishAsync('dev/x', 'hello', { qos: 1 });
      expect(await received).toEqual({ topic: 'dev/x', payload: 'hello' });
      expect(onBus).toEqual(['dev/x=hello']);
    } finally {
      await unsubscribe();
      await tcp.endAsync();
      await ws.endAsync();
    }
  });

  it('closes a WebSocket connection whose packet declares more than maxPacketBytes', async () => {
    const ws = new WebSocket(tb.wsUrl!, 'mqtt');
    await withTimeout(new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)), 5000, 'the WebSocket to open');
    const closed = withTimeout(new Promise((resolve) => ws.once('close', resolve)), 5000, 'the broker to close the WebSocket');
    ws.send(connectPacket('ws-big'));
    // A PUBLISH header declaring 100 MiB, then a first slice of its body.
    ws.send(Buffer.concat([Buffer.from([0x30, 0x80, 0x80, 0x80, 0x32, 0, 1, 0x78]), Buffer.alloc(64 * 1024)]));
    await closed;
    expect(tb.broker.stats().rejects.oversize_packet).toBe(1);
  });

  it('keeps clients from publishing on $SYS even in open mode', async () => {
    const sub = await mqtt.connectAsync(tb.url, { clientId: 'sys-reader' });
    const pub = await mqtt.connectAsync(tb.url, { clientId: 'sys-spoofer' });
    try {
      const got: string[] = [];
      sub.on('message', (topic) => got.push(topic));
      await sub.subscribeAsync('$SYS/linewatch/fake');
      await sub.subscribeAsync('ok/after');
      const before = tb.broker.stats().rejects.publish_denied;
      await pub.publishAsync('$SYS/linewatch/fake', 'spoofed', { qos: 1 });
      await pub.publishAsync('ok/after', 'real', { qos: 1 });
      await waitFor(() => got.includes('ok/after'), 5000, 'the message after the spoof');
      expect(got).toEqual(['ok/after']);
      expect(tb.broker.stats().rejects.publish_denied).toBe(before + 1);
    } finally {
      await sub.endAsync();
      await pub.endAsync();
    }
  });

  it('delivers a bus publish to a network subscriber', async () => {
    const sub = await mqtt.connectAsync(tb.url, { clientId: 'bus-reader' });
    try {
      await sub.subscribeAsync('from/bus');
      const received = nextMessage(sub, 'the bus message');
      await tb.broker.bus.publish('from/bus', 'hi');
      expect((await received).payload).toBe('hi');
      expect(tb.broker.stats().messagesOut).toBeGreaterThan(0);
    } finally {
      await sub.endAsync();
    }
  });
});
