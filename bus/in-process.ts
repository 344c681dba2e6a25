// Bus on the embedded Aedes instance: no socket, no serialisation — the fastest path for
// services running in the broker's process (`linewatch up`).
import type { Aedes, AedesPublishPacket } from 'aedes';
import { logger } from '../lib/log.js';
import type { Bus, MessageHandler, PublishOptions, Unsubscribe } from './bus.js';

const log = logger('bus');

export class InProcessBus implements Bus {
  /** Handlers that threw; the message is still acknowledged so one bad handler cannot stall the broker. */
  handlerErrors = 0;
  private readonly subscriptions = new Set<() => Promise<void>>();

  constructor(private readonly broker: Aedes) {}

  publish(topic: string, payload: string | Buffer, options: PublishOptions = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      this.broker.publish(
        {
          cmd: 'publish',
          topic,
          payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
          qos: options.qos ?? 0,
          retain: options.retain ?? false,
          dup: false,
        },
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }

  async subscribe(filter: string | string[], handler: MessageHandler): Promise<Unsubscribe> {
    const filters = Array.isArray(filter) ? filter : [filter];
    // Aedes calls `done` once the deliver callback runs; a QoS 1 publisher gets its PUBACK only
    // after every in-process handler has resolved, which is what gives acknowledge-after-persist.
    const deliver = (packet: AedesPublishPacket, done: () => void): void => {
      let result: void | Promise<void>;
      try {
        result = handler(packet.topic, packet.payload as Buffer);
      } catch (err) {
        this.onHandlerError(packet.topic, err);
        done();
        return;
      }
      if (result instanceof Promise) {
        result.then(done, (err: unknown) => {
          this.onHandlerError(packet.topic, err);
          done();
        });
      } else {
        done();
      }
    };
    await Promise.all(filters.map((f) => new Promise<void>((resolve) => this.broker.subscribe(f, deliver, resolve))));
    const unsubscribe = async (): Promise<void> => {
      if (!this.subscriptions.delete(unsubscribe)) return;
      await Promise.all(filters.map((f) => new Promise<void>((resolve) => this.broker.unsubscribe(f, deliver, resolve))));
    };
    this.subscriptions.add(unsubscribe);
    return unsubscribe;
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((unsubscribe) => unsubscribe()));
  }

  private onHandlerError(topic: string, err: unknown): void {
    this.handlerErrors++;
    log.error({ err, topic }, 'a subscriber failed to handle a message; it was acknowledged anyway');
  }
}
