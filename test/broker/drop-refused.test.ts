// broker/drop-refused.ts: a publish authorizePublish marked is acknowledged and forwarded to
// nobody (real Aedes, real sockets, MQTT.js clients); the guard refuses an Aedes whose publish
// changed shape (fake Aedes-like objects: another Aedes version cannot be installed here).
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes, type AedesPublishPacket, type PublishPacket } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installRefusedPublishDrop, type AedesPublish, type AedesPublisher } from '../../broker/drop-refused.js';
import { sleep, waitFor } from '../../lib/wait.js';

describe('a refused publish on a real Aedes', () => {
  let aedes: Aedes;
  let server: Server;
  let url: string;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    aedes = await Aedes.createBroker();
    const { drop } = await installRefusedPublishDrop(aedes);
    aedes.authorizePublish = (_client, packet, callback) => {
      if (packet.topic.startsWith('refused/')) drop(packet);
      callback(null);
    };
    server = createServer(aedes.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    await new Promise<void>((resolve) => aedes?.close(() => resolve()));
  });

  async function connect(clientId: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
    const client = await mqtt.connectAsync(url, { clientId, reconnectPeriod: 0, connectTimeout: 5000, ...options });
    clients.push(client);
    return client;
  }

  it('acknowledges a refused QoS 1 publish, forwards it to nobody, stores no retained copy, and keeps the connection', async () => {
    const subscriber = await connect('subscriber');
    const seen: string[] = [];
    subscriber.on('message', (topic, payload) => seen.push(`${topic}=${payload.toString()}`));
    await subscriber.subscribeAsync('#', { qos: 1 });
    const publisher = await connect('publisher');
    await publisher.publishAsync('refused/x', 'no', { qos: 1, retain: true }); // resolves on PUBACK
    await publisher.publishAsync('kept/x', 'yes', { qos: 1 });
    await waitFor(() => seen.includes('kept/x=yes'), 5000, 'the kept message at the subscriber');
    expect(seen).toEqual(['kept/x=yes']);
    expect(publisher.connected).toBe(true);

    const late = await connect('late-subscriber');
    const retained: string[] = [];
    late.on('message', (topic) => retained.push(topic));
    await late.subscribeAsync('refused/#', { qos: 1 });
    await publisher.publishAsync('kept/y', 'marker', { qos: 1 });
    await sleep(100);
    expect(retained).toEqual([]);
  });

  it('drops a refused will', async () => {
    const subscriber = await connect('will-watcher');
    const wills: string[] = [];
    subscriber.on('message', (topic) => wills.push(topic));
    await subscriber.subscribeAsync(['refused/will', 'kept/will'], { qos: 1 });
    const refused = await connect('refused-will', { will: { topic: 'refused/will', payload: Buffer.from('gone'), qos: 1, retain: false } });
    const kept = await connect('kept-will', { will: { topic: 'kept/will', payload: Buffer.from('gone'), qos: 1, retain: false } });
    refused.stream.destroy();
    kept.stream.destroy();
    await waitFor(() => wills.includes('kept/will'), 5000, 'the kept will');
    await sleep(100);
    expect(wills).toEqual(['kept/will']);
  });
});

describe('the guard', () => {
  it('refuses another Aedes version', async () => {
    const aedes = await Aedes.createBroker();
    try {
      await expect(installRefusedPublishDrop(aedes, '1.3.0')).rejects.toThrow(/aedes 1\.3\.0 is installed but broker\/drop-refused\.ts is written for aedes 1\.2\.0/);
      expect(Object.prototype.hasOwnProperty.call(aedes, 'publish')).toBe(false); // nothing was replaced
    } finally {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    }
  });

  /** A fake Aedes-like object: an in-memory topic → listeners map with Aedes's subscribe/unsubscribe. */
  class FakeAedesLike {
    readonly listeners = new Map<string, ((packet: AedesPublishPacket, done: () => void) => void)[]>();
    subscribe(topic: string, listener: (packet: AedesPublishPacket, done: () => void) => void, done: () => void): void {
      this.listeners.set(topic, [...(this.listeners.get(topic) ?? []), listener]);
      done();
    }
    unsubscribe(topic: string, _listener: unknown, done: () => void): void {
      this.listeners.delete(topic);
      done();
    }
    deliver(packet: PublishPacket, done: (err?: Error) => void): void {
      for (const listener of this.listeners.get(packet.topic) ?? []) listener(packet as AedesPublishPacket, () => undefined);
      done();
    }
  }

  it('refuses a publish of another arity (a fake Aedes-like object whose publish takes (packet, done))', async () => {
    class FakeAedesWithTwoParameterPublish extends FakeAedesLike {
      publish(packet: PublishPacket, done: (err?: Error) => void): void {
        this.deliver(packet, done);
      }
    }
    await expect(installRefusedPublishDrop(new FakeAedesWithTwoParameterPublish() as unknown as AedesPublisher, '1.2.0')).rejects.toThrow(/aedes\.publish is not its own method of \(packet, client, done\): 2 parameters/);
  });

  it('refuses a publish already replaced on the instance (a fake Aedes-like object binding its publish)', async () => {
    class FakeAedesWithBoundPublish extends FakeAedesLike {
      constructor() {
        super();
        this.publish = this.publish.bind(this);
      }
      publish(packet: PublishPacket, _client: unknown, done: (err?: Error) => void): void {
        this.deliver(packet, done);
      }
    }
    await expect(installRefusedPublishDrop(new FakeAedesWithBoundPublish() as unknown as AedesPublisher, '1.2.0')).rejects.toThrow(/already replaced on the instance/);
  });

  it('fails the probe when the wrapper is not what publishing reaches (a fake Aedes-like object whose publish cannot be replaced)', async () => {
    class FakeAedesWithFixedPublish extends FakeAedesLike {}
    const fixedPublish: AedesPublish = function (this: FakeAedesLike, packet, _client, done) {
      this.deliver(packet, done);
    };
    Object.defineProperty(FakeAedesWithFixedPublish.prototype, 'publish', { get: () => fixedPublish, set: () => undefined });
    await expect(installRefusedPublishDrop(new FakeAedesWithFixedPublish() as unknown as AedesPublisher, '1.2.0')).rejects.toThrow(/the probe subscriber got \[dropped, kept\] where only "kept" should arrive/);
  });

  it('fails the probe when a publish ends with an error (a fake Aedes-like object whose publish fails)', async () => {
    class FakeAedesWithFailingPublish extends FakeAedesLike {
      publish(_packet: PublishPacket, _client: unknown, done: (err?: Error) => void): void {
        done(new Error('publishing is done differently now'));
      }
    }
    await expect(installRefusedPublishDrop(new FakeAedesWithFailingPublish() as unknown as AedesPublisher, '1.2.0')).rejects.toThrow(/a probe publish failed: publishing is done differently now/);
  });
});
