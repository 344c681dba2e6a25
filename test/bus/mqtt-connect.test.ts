// bus/mqtt-connect.ts: the one bounded wait for a CONNACK, against a real broker, a port where
// nothing listens, and a real TCP server that accepts and never answers (a hung broker).
import { createServer, type Server, type Socket } from 'node:net';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { untilConnected } from '../../bus/mqtt-connect.js';
import { freePort } from '../../historian/influxd.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

describe('untilConnected', () => {
  let broker: TestBroker;
  let silent: Server;
  const sockets = new Set<Socket>();
  let silentPort: number;

  beforeAll(async () => {
    broker = await startTestBroker({ wsPort: null });
    await broker.addAccount('bus-user', 'bus-password-1', 'admin');
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
    await broker?.stop();
  });

  it('resolves at the CONNACK of a real broker', async () => {
    const client = mqtt.connect(broker.url, { username: 'bus-user', password: 'bus-password-1', clientId: 'bus-user:connect-ok', reconnectPeriod: 100 });
    try {
      await untilConnected(client, 10_000, 'a CONNACK');
      expect(client.connected).toBe(true);
    } finally {
      await client.endAsync(true);
    }
  });

  it('rejects with the refusal and ends the client when the login is refused', async () => {
    const client = mqtt.connect(broker.url, { username: 'bus-user', password: 'wrong-password', clientId: 'bus-user:connect-refused', reconnectPeriod: 100 });
    await expect(untilConnected(client, 10_000, 'a CONNACK')).rejects.toThrow(/Bad username or password|Not authorized/);
    expect(client.disconnecting).toBe(true); // set by end(), not by a failed attempt
  });

  it('rejects when nothing listens, and after the timeout (naming the wait) when the server never answers', async () => {
    const closed = mqtt.connect(`mqtt://127.0.0.1:${await freePort()}`, { reconnectPeriod: 100 });
    await expect(untilConnected(closed, 10_000, 'a CONNACK')).rejects.toThrow(/ECONNREFUSED/);
    expect(closed.disconnecting).toBe(true); // set by end(), not by a failed attempt

    const hung = mqtt.connect(`mqtt://127.0.0.1:${silentPort}`, { reconnectPeriod: 100, connectTimeout: 60_000 });
    await expect(untilConnected(hung, 300, 'a CONNACK from the silent server')).rejects.toThrow('timed out after 300 ms waiting for a CONNACK from the silent server');
    expect(hung.disconnecting).toBe(true); // set by end(), not by a failed attempt
  });
});
