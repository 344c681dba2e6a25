// Bus on the embedded Aedes instance: no socket, no serialisation — the fastest path for
// services running in the broker's process (`linewatch up`). Subscribers get the message the
// broker decoded when it validated the publish, not a second parse (broker/decoded.ts).
import type { Aedes, AedesPublishPacket } from 'aedes';
import type { Decoded } from '../contracts/decode.js';
import { decodedMessages, type DecodedMessages } from '../broker/decoded.js';
import { publishRefusals, type PublishRefusals } from '../broker/refusals.js';
import { logger } from '../lib/log.js';
import { MessageRefused, type Bus, type MessageHandler, type PublishOptions, type Unsubscribe } from './bus.js';

const log = logger('bus');

export class InProcessBus implements Bus {
  /** Handlers that threw (other than MessageRefused); the message is still acknowledged so one bad handler cannot stall the broker. */
  handlerErrors = 0;
  /** Messages a handler refused (MessageRefused): their QoS 1 publisher got no PUBACK. */
  refused = 0;
  private readonly subscriptions = new Set<() => Promise<void>>();
  private readonly refusals: PublishRefusals;
  /** What the broker (and this bus) decoded, per payload; `decodes` and `reused` count them. */
  readonly decoded: DecodedMessages;

  constructor(private readonly broker: Aedes) {
    this.refusals = publishRefusals(broker);
    this.decoded = decodedMessages(broker);
  }

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
    // Fail here, loudly, if Aedes no longer lets a refusal withhold the PUBACK, or no longer
    // passes the payload the broker decoded through to its subscribers.
    await Promise.all([this.refusals.checked, this.decoded.checked]);
    // Aedes calls `done` once the deliver callback runs; a QoS 1 publisher gets its PUBACK only
    // after every in-process handler has resolved, which is what gives acknowledge-after-persist.
    const deliver = (packet: AedesPublishPacket, done: () => void): void => {
      let result: void | Promise<void>;
      const decoded = (): Decoded => this.decoded.of(packet.topic, packet.payload as Buffer);
      try {
        result = handler(packet.topic, packet.payload as Buffer, decoded);
      } catch (err) {
        this.onHandlerError(packet, err);
        done();
        return;
      }
      if (result instanceof Promise) {
        result.then(done, (err: unknown) => {
          this.onHandlerError(packet, err);
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

  private onHandlerError(packet: AedesPublishPacket, err: unknown): void {
    if (err instanceof MessageRefused) {
      // No PUBACK for the publisher (QoS 0 has none: that message is lost); the handler logs why.
      this.refused++;
      this.refusals.refuse(packet, err);
      return;
    }
    this.handlerErrors++;
    log.error({ err, topic: packet.topic }, 'a subscriber failed to handle a message; it was acknowledged anyway');
  }
}
