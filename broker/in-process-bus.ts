// Bus on the embedded Aedes instance: no socket, no serialisation — the fastest path for
// services running in the broker's process (`linewatch up`). Subscribers get the message the
// broker decoded when it validated the publish, not a second parse (broker/decoded.ts).
import type { Aedes, AedesPublishPacket, PublishPacket } from 'aedes';
import type { Decoded } from '../contracts/decode.js';
import { decodedMessages, type DecodedMessages } from './decoded.js';
import { publishRefusals, type PublishRefusals, type Redelivery } from './refusals.js';
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { MessageRefused, type Bus, type ConnectionListener, type MessageHandler, type PublishOptions, type SubscribeOptions, type Unsubscribe } from '../bus/bus.js';

const log = logger('bus');

/**
 * How an in-process QoS 1 publish that a subscriber refused (the historian, spool full) is
 * delivered to that subscriber again (docs/broker.md#refusing-a-publish): after `firstDelayMs`,
 * doubling up to `maxDelayMs`, for at most `giveUpAfterMs`; at most `maxWaiting` publishes wait
 * at once (a further one is given up at once).
 */
export const REDELIVERY: RedeliveryPolicy = { firstDelayMs: 100, maxDelayMs: 5_000, giveUpAfterMs: 60_000, maxWaiting: 10_000 };
/**
 * For a publisher that keeps its own store and retries, as a device does (the serial gateway's
 * outbox spools what the historian refuses): a refused publish fails at once, no redelivery.
 */
export const NO_REDELIVERY: RedeliveryPolicy = { firstDelayMs: 1, maxDelayMs: 1, giveUpAfterMs: 0, maxWaiting: 100_000 };

export interface RedeliveryPolicy {
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
  readonly giveUpAfterMs: number;
  readonly maxWaiting: number;
}

interface Subscription {
  readonly handler: MessageHandler;
  /** False once unsubscribed. */
  active: boolean;
}

export interface InProcessBusOptions {
  /** Where give-ups are logged (the broker's limiter, flushed by its timer); one of the bus's own otherwise. */
  limitedLog?: LogLimiter;
  /** Default REDELIVERY. */
  redelivery?: RedeliveryPolicy;
}

/** What a redelivery meets when the subscriber that refused the message has unsubscribed since (e.g. the historian stopped): it will never take it. */
class SubscriberGone extends MessageRefused {}

export class InProcessBus implements Bus {
  /** Handlers that threw (other than MessageRefused); the message is still acknowledged so one bad handler cannot stall the broker. */
  handlerErrors = 0;
  /** Messages a handler refused (MessageRefused): their QoS 1 publisher got no PUBACK. */
  refused = 0;
  /** In-process publishes a subscriber refused and then took on a redelivery. */
  redelivered = 0;
  /** In-process publishes a subscriber still refused after `giveUpAfterMs` (or beyond `maxWaiting`): their publisher's promise rejected. */
  redeliveryGaveUp = 0;
  private waiting = 0;
  private readonly closing = new AbortController();
  private readonly subscriptions = new Set<() => Promise<void>>();
  private readonly refusals: PublishRefusals;
  private readonly limitedLog: LogLimiter;
  private readonly redelivery: RedeliveryPolicy;
  /** What the broker (and this bus) decoded, per payload; `decodes` and `reused` count them. */
  readonly decoded: DecodedMessages;

  constructor(
    private readonly broker: Aedes,
    options: InProcessBusOptions = {},
  ) {
    this.refusals = publishRefusals(broker);
    this.limitedLog = options.limitedLog ?? new LogLimiter(log);
    this.redelivery = options.redelivery ?? REDELIVERY;
    this.decoded = decodedMessages(broker);
  }

  /**
   * Resolves once every subscriber took the message. A QoS 1 message that an in-process
   * subscriber refused (MessageRefused) has reached all the others once; it is delivered to the
   * refusing ones again (the redelivery policy, REDELIVERY by default) and the promise resolves
   * when they take it, or rejects with MessageRefused when they still refuse it after
   * `giveUpAfterMs` (counted, logged at warn).
   */
  async publish(topic: string, payload: string | Buffer, options: PublishOptions = {}): Promise<void> {
    const packet: PublishPacket = {
      cmd: 'publish',
      topic,
      payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
      qos: options.qos ?? 0,
      retain: options.retain ?? false,
      dup: false,
    };
    try {
      await new Promise<void>((resolve, reject) => this.broker.publish(packet, (err) => (err ? reject(err) : resolve())));
    } catch (err) {
      const redeliveries = this.refusals.takeRedeliveries(packet.payload as Buffer);
      if (!(err instanceof MessageRefused) || redeliveries.length === 0) throw err;
      await this.redeliver(topic, redeliveries, err);
    }
  }

  async subscribe(filter: string | string[], handler: MessageHandler, options: SubscribeOptions = {}): Promise<Unsubscribe> {
    const filters = Array.isArray(filter) ? filter : [filter];
    // Fail here, loudly, if Aedes no longer lets a refusal withhold the PUBACK, or no longer
    // passes the payload the broker decoded through to its subscribers.
    await Promise.all([this.refusals.checked, this.decoded.checked]);
    // Aedes calls `done` once the deliver callback runs; a QoS 1 publisher gets its PUBACK only
    // after every in-process handler has resolved, which is what gives acknowledge-after-persist.
    const subscription = { handler, active: true };
    const deliver = (packet: AedesPublishPacket, done: () => void): void => {
      let result: void | Promise<void>;
      const decoded = (): Decoded => this.decoded.of(packet.topic, packet.payload as Buffer);
      try {
        result = handler(packet.topic, packet.payload as Buffer, decoded);
      } catch (err) {
        this.onHandlerError(packet, subscription, err);
        done();
        return;
      }
      if (result instanceof Promise) {
        result.then(done, (err: unknown) => {
          this.onHandlerError(packet, subscription, err);
          done();
        });
      } else {
        done();
      }
    };
    await Promise.all(filters.map((f) => new Promise<void>((resolve) => this.broker.subscribe(f, deliver, resolve))));
    if (options.retained) await this.deliverRetained(filters, deliver);
    const unsubscribe = async (): Promise<void> => {
      if (!this.subscriptions.delete(unsubscribe)) return;
      subscription.active = false; // a redelivery waiting for it gives up
      await Promise.all(filters.map((f) => new Promise<void>((resolve) => this.broker.unsubscribe(f, deliver, resolve))));
    };
    this.subscriptions.add(unsubscribe);
    return unsubscribe;
  }

  /** The retained messages of `filters`, each through `deliver` (SubscribeOptions.retained), read from Aedes' persistence. */
  private async deliverRetained(filters: string[], deliver: (packet: AedesPublishPacket, done: () => void) => void): Promise<void> {
    const persistence = (this.broker as { persistence?: { createRetainedStreamCombi?: (patterns: string[]) => AsyncIterable<AedesPublishPacket> } }).persistence;
    if (typeof persistence?.createRetainedStreamCombi !== 'function') {
      throw new Error('the in-process bus cannot read retained messages: Aedes has no persistence.createRetainedStreamCombi (an Aedes or aedes-persistence upgrade changed it); see broker/in-process-bus.ts');
    }
    for await (const packet of persistence.createRetainedStreamCombi(filters)) {
      await new Promise<void>((resolve) => deliver(packet, resolve));
    }
  }

  async close(): Promise<void> {
    this.closing.abort(); // waiting redeliveries give up now, connection listeners hear false
    await Promise.all([...this.subscriptions].map((unsubscribe) => unsubscribe()));
  }

  /** In the broker's process: connected until closed. */
  connected(): boolean {
    return !this.closing.signal.aborted;
  }

  /** The one change an in-process bus has: its close. */
  onConnectionChange(listener: ConnectionListener): () => void {
    const onClose = (): void => listener(false);
    this.closing.signal.addEventListener('abort', onClose, { once: true });
    return () => this.closing.signal.removeEventListener('abort', onClose);
  }

  private onHandlerError(packet: AedesPublishPacket, subscription: Subscription, err: unknown): void {
    if (err instanceof MessageRefused) {
      // No PUBACK for the publisher (QoS 0 has none: that message is lost); the handler logs why.
      this.refused++;
      const topic = packet.topic;
      const payload = packet.payload as Buffer;
      this.refusals.refuse(packet, err, () => this.handOver(subscription, topic, payload));
      return;
    }
    this.countHandlerError(packet.topic, err);
  }

  private countHandlerError(topic: string, err: unknown): void {
    this.handlerErrors++;
    log.error({ err, topic }, 'a subscriber failed to handle a message; it was acknowledged anyway');
  }

  /** One redelivery: resolves when the handler took the message (or failed otherwise: acknowledged anyway), rejects with its MessageRefused. */
  private async handOver(subscription: Subscription, topic: string, payload: Buffer): Promise<void> {
    if (!subscription.active) throw new SubscriberGone('the subscriber that refused it has unsubscribed since');
    try {
      await subscription.handler(topic, payload, () => this.decoded.of(topic, payload));
    } catch (err) {
      if (err instanceof MessageRefused) throw err;
      this.countHandlerError(topic, err);
    }
  }

  private async redeliver(topic: string, redeliveries: Redelivery[], refusal: MessageRefused): Promise<void> {
    const policy = this.redelivery;
    if (this.waiting >= policy.maxWaiting) return this.giveUp(topic, refusal, `${policy.maxWaiting} in-process publishes already wait for a redelivery`);
    this.waiting++;
    try {
      const deadline = Date.now() + policy.giveUpAfterMs;
      let pending = redeliveries;
      let lastRefusal = refusal;
      for (let delay = policy.firstDelayMs; pending.length > 0; delay = Math.min(delay * 2, policy.maxDelayMs)) {
        if (Date.now() + delay > deadline) return this.giveUp(topic, lastRefusal, `still refused after ${policy.giveUpAfterMs} ms of redeliveries`);
        if (!(await this.pause(delay))) return this.giveUp(topic, lastRefusal, 'the bus closed while it waited for a redelivery');
        const results = await Promise.allSettled(pending.map((redeliver) => redeliver()));
        const stillRefused: Redelivery[] = [];
        for (const [index, result] of results.entries()) {
          if (result.status === 'fulfilled') continue;
          const reason = result.reason as MessageRefused;
          if (reason instanceof SubscriberGone) return this.giveUp(topic, lastRefusal, reason.message);
          lastRefusal = reason;
          stillRefused.push(pending[index]!);
        }
        pending = stillRefused;
      }
      this.redelivered++;
    } finally {
      this.waiting--;
    }
  }

  /** Waits `ms`; false if the bus closed meanwhile. */
  private pause(ms: number): Promise<boolean> {
    const signal = this.closing.signal;
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      }, ms);
      timer.unref(); // a redelivery alone does not keep the process alive (stop() closes the bus, which ends it)
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private giveUp(topic: string, refusal: MessageRefused, why: string): never {
    this.redeliveryGaveUp++;
    const message = `a subscriber refused an in-process publish on ${topic} (${why}): every other subscriber got it, this one did not store it: ${refusal.message}`;
    this.limitedLog.write('warn', 'redelivery_gave_up', { topic }, message);
    throw new MessageRefused(message);
  }
}
