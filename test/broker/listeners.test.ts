// The broker's listeners and in-process bus, in open mode: TCP, WebSocket, Bus ↔ network.
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

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
