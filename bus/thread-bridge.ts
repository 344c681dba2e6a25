// The Bus across a thread boundary: a service in a worker thread (the historian with
// historian.thread "worker", historian/thread.ts) uses the Bus of the main thread through a
// MessagePort, so its work runs on the second core while the broker keeps the first.
//
//   main thread: serveBus(bus, port) subscribes and publishes on the real bus for the worker;
//   worker:      new ThreadBus(port) is the Bus the service is given.
//
// What crosses, and what it costs (docs/historian.md#worker-thread):
// - Deliveries go in batches, one postMessage per event-loop turn of the main thread: the turn's
//   payloads copied into one ArrayBuffer that is transferred, not cloned, with their topics and
//   ids. (A Buffer posted on its own would clone its whole backing store: an 8 KiB pool slab or a
//   socket read, for a 64-byte payload.)
// - Outcomes come back in batches too, one per turn of the worker. The main thread's handler for
//   a delivery resolves when the worker's handler did and rejects with MessageRefused when it
//   refused, so acknowledge-after-persist and refusal (bus.ts MessageRefused) hold across threads.
// - The worker decodes a message again (contracts/decode.ts) when its handler asks: what the
//   broker decoded is an object of the main thread's heap. That costs the worker, not the broker.
// - A delivery the worker never answered (it exited, the bridge closed) is refused, so the
//   publisher keeps it and sends it again; a worker that is gone (ServedBus.fail) keeps its
//   subscriptions and refuses every delivery, so nothing is acknowledged that nobody stored.
// - A payload is a view of its turn's transferred buffer: a handler that keeps one keeps the
//   whole turn's bytes (the historian keeps none: it turns each event into line protocol).
import type { MessagePort } from 'node:worker_threads';
import { decode, type Decoded } from '../contracts/decode.js';
import { logger } from '../lib/log.js';
import { MessageRefused, type Bus, type ConnectionListener, type MessageHandler, type PublishOptions, type SubscribeOptions, type Unsubscribe } from './bus.js';

const log = logger('bus');

/** The worker asks the main thread. */
type ToMain =
  | { op: 'subscribe'; id: number; filter: string | string[]; options: SubscribeOptions | undefined }
  | { op: 'unsubscribe'; id: number; subscription: number }
  | { op: 'publish'; id: number; topic: string; payload: string | Uint8Array; options: PublishOptions | undefined }
  /** Outcomes of deliveries: `done` were handled, `refused` (id, reason) were refused. */
  | { op: 'outcomes'; done: number[]; refused: [number, string][] }
  | { op: 'close' };

/** The main thread tells the worker. */
type ToWorker =
  | { op: 'hello'; connected: boolean; shared: boolean | undefined }
  | { op: 'reply'; id: number; error?: string; refused?: boolean }
  | { op: 'connection'; connected: boolean }
  /** One turn's deliveries: message i is for subscription `subscriptions[i]`, its payload `bytes[ends[i-1] .. ends[i]]`. */
  | { op: 'deliveries'; subscriptions: number[]; ids: number[]; topics: string[]; ends: number[]; bytes: ArrayBuffer }
  | { op: 'closed' };

/** A delivery waiting for the worker's outcome. */
interface Waiting {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** A payload as it crosses: a string as is, bytes copied to exactly their size (a Buffer's pool slab would be cloned whole). */
function crossing(payload: string | Buffer): string | Uint8Array {
  return typeof payload === 'string' ? payload : Uint8Array.prototype.slice.call(payload);
}

/** The bus the main thread serves to one worker. */
export interface ServedBus {
  /** Deliveries handed to the worker and not answered yet. */
  readonly waiting: number;
  /**
   * The worker is gone without closing its bus (it exited, it failed): what it did not answer is
   * refused, and so is every delivery from now on — the subscriptions stay, so nothing is
   * acknowledged that nobody stored — until close().
   */
  fail(reason: string): void;
  /** Ends it: the worker's subscriptions are dropped and what it did not answer is refused. Idempotent. */
  close(reason: string): Promise<void>;
}

/** Serves `bus` to the ThreadBus at the other end of `port`, until close(). */
export function serveBus(bus: Bus, port: MessagePort): ServedBus {
  const subscriptions = new Map<number, Promise<Unsubscribe | undefined>>();
  const waiting = new Map<number, Waiting>();
  let nextDelivery = 1;
  /** Why deliveries are refused now (failed or closing); undefined while the worker is served. */
  let refusing: string | undefined;
  let closing: Promise<void> | undefined;
  // The turn's deliveries, posted together by flush().
  let batch: { subscriptions: number[]; ids: number[]; topics: string[]; payloads: Buffer[]; bytes: number } | undefined;

  const post = (message: ToWorker, transfer?: ArrayBuffer[]): void => {
    if (refusing === undefined) port.postMessage(message, transfer);
  };
  const flush = (): void => {
    const turn = batch;
    batch = undefined;
    if (turn === undefined || refusing !== undefined) return;
    const bytes = new Uint8Array(turn.bytes);
    const ends: number[] = [];
    let offset = 0;
    for (const payload of turn.payloads) {
      bytes.set(payload, offset);
      offset += payload.length;
      ends.push(offset);
    }
    post({ op: 'deliveries', subscriptions: turn.subscriptions, ids: turn.ids, topics: turn.topics, ends, bytes: bytes.buffer }, [bytes.buffer]);
  };
  const handlerFor = (subscription: number): MessageHandler => (topic, payload) => {
    if (refusing !== undefined) return Promise.reject(new MessageRefused(`${refusing}; the message stays with its publisher`));
    const id = nextDelivery++;
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
    if (batch === undefined) {
      batch = { subscriptions: [], ids: [], topics: [], payloads: [], bytes: 0 };
      setImmediate(flush);
    }
    batch.subscriptions.push(subscription);
    batch.ids.push(id);
    batch.topics.push(topic);
    batch.payloads.push(bytes);
    batch.bytes += bytes.length;
    return new Promise<void>((resolve, reject) => waiting.set(id, { resolve, reject }));
  };
  const reply = (id: number, outcome: Promise<unknown>): void => {
    outcome.then(
      () => post({ op: 'reply', id }),
      (err: unknown) => post({ op: 'reply', id, error: (err as Error).message, refused: err instanceof MessageRefused }),
    );
  };

  const onMessage = (message: ToMain): void => {
    // Once failing or closing, the worker's requests are not acted on (a subscription made now would outlive close()).
    if (refusing !== undefined) return;
    switch (message.op) {
      case 'subscribe': {
        const subscribed = bus.subscribe(message.filter, handlerFor(message.id), message.options);
        subscriptions.set(message.id, subscribed.catch(() => undefined));
        reply(message.id, subscribed);
        return;
      }
      case 'unsubscribe': {
        const subscribed = subscriptions.get(message.subscription);
        subscriptions.delete(message.subscription);
        reply(message.id, (subscribed ?? Promise.resolve(undefined)).then((unsubscribe) => unsubscribe?.()));
        return;
      }
      case 'publish':
        reply(message.id, bus.publish(message.topic, typeof message.payload === 'string' ? message.payload : Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength), message.options));
        return;
      case 'outcomes':
        for (const id of message.done) {
          waiting.get(id)?.resolve();
          waiting.delete(id);
        }
        for (const [id, reason] of message.refused) {
          waiting.get(id)?.reject(new MessageRefused(reason));
          waiting.delete(id);
        }
        return;
      case 'close':
        void close('the worker closed its bus');
        return;
    }
  };
  port.on('message', onMessage);
  const stopListening = bus.onConnectionChange((connected) => post({ op: 'connection', connected }));
  post({ op: 'hello', connected: bus.connected(), shared: bus.sharedSubscriptions?.() });

  function fail(reason: string): void {
    if (refusing !== undefined) return;
    // The turn's batch is not posted: refused with the rest, it cannot also be stored.
    refusing = reason;
    batch = undefined;
    port.off('message', onMessage);
    stopListening();
    for (const entry of waiting.values()) entry.reject(new MessageRefused(`${reason}; the message stays with its publisher`));
    waiting.clear();
  }

  function close(reason: string): Promise<void> {
    closing ??= (async () => {
      const served = refusing === undefined;
      fail(reason);
      const unsubscribes = [...subscriptions.values()];
      subscriptions.clear();
      await Promise.all(unsubscribes.map(async (subscribed) => (await subscribed)?.().catch(() => undefined)));
      // The worker's bus is closed from here on, whichever side closed it (a failed worker hears nothing).
      if (served) port.postMessage({ op: 'closed' } satisfies ToWorker);
      else port.close();
    })();
    return closing;
  }

  return {
    get waiting() {
      return waiting.size;
    },
    fail,
    close,
  };
}

/** The Bus in a worker thread: every call goes to the main thread's bus through `port` (serveBus). */
export class ThreadBus implements Bus {
  handlerErrors = 0;
  /** Deliveries a handler refused (MessageRefused): refused on the main thread's bus too. */
  refused = 0;
  /** Deliveries that arrived for a subscription already ended here: refused, since nobody handled them. */
  refusedUnsubscribed = 0;
  private readonly routes = new Map<number, MessageHandler>();
  private readonly replies = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private readonly connectionListeners = new Set<ConnectionListener>();
  private nextId = 1;
  private connectedNow = false;
  private shared: boolean | undefined;
  private closing: Promise<void> | undefined;
  private closedNow = false;
  // The turn's outcomes, posted together.
  private outcomes: { done: number[]; refused: [number, string][] } | undefined;
  /** Resolves with the main thread's first message (what its bus offers). */
  readonly ready: Promise<void>;
  private helloed: () => void = () => undefined;
  private whenClosed: () => void = () => undefined;

  constructor(private readonly port: MessagePort) {
    this.ready = new Promise((resolve) => (this.helloed = resolve));
    port.on('message', (message: ToWorker) => this.onMessage(message));
    // The other end went away without a word (the main thread gave the worker up): closed too.
    port.on('close', () => this.closed());
  }

  publish(topic: string, payload: string | Buffer, options?: PublishOptions): Promise<void> {
    return this.ask((id) => ({ op: 'publish', id, topic, payload: crossing(payload), options }));
  }

  async subscribe(filter: string | string[], handler: MessageHandler, options?: SubscribeOptions): Promise<Unsubscribe> {
    // The subscription is known by its request's id; its handler is in place before a delivery can come.
    const subscription = this.nextId;
    this.routes.set(subscription, handler);
    await this.ask((id) => ({ op: 'subscribe', id, filter, options })).catch((err: unknown) => {
      this.routes.delete(subscription);
      throw err;
    });
    return async () => {
      if (!this.routes.delete(subscription) || this.closedNow) return;
      await this.ask((id) => ({ op: 'unsubscribe', id, subscription }));
    };
  }

  connected(): boolean {
    return this.connectedNow && !this.closedNow;
  }

  onConnectionChange(listener: ConnectionListener): () => void {
    this.connectionListeners.add(listener);
    return () => this.connectionListeners.delete(listener);
  }

  sharedSubscriptions(): boolean {
    return this.shared === true;
  }

  /** Ends this side: the main thread drops the subscriptions and refuses what was not answered. */
  close(): Promise<void> {
    this.closing ??= this.closedNow
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          this.whenClosed = resolve;
          // At the end of this turn, after its outcomes and on the same port: what was handled by
          // then is acknowledged, not refused by the close. A handler still running is refused.
          setImmediate(() => {
            this.postOutcomes();
            this.port.postMessage({ op: 'close' } satisfies ToMain);
          });
        });
    return this.closing;
  }

  /** The main thread closed the bus (on request, or because the service is going). */
  private closed(): void {
    if (this.closedNow) return;
    this.closedNow = true;
    this.routes.clear();
    for (const waiting of this.replies.values()) waiting.reject(new Error('the bus is closed'));
    this.replies.clear();
    this.port.close();
    if (this.connectedNow) for (const listener of this.connectionListeners) listener(false);
    this.whenClosed();
  }

  /** Posts the request made with the next id and resolves with its reply. */
  private ask(request: (id: number) => ToMain): Promise<void> {
    if (this.closedNow || this.closing !== undefined) return Promise.reject(new Error('the bus is closed'));
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.replies.set(id, { resolve, reject });
      this.port.postMessage(request(id));
    });
  }

  private onMessage(message: ToWorker): void {
    switch (message.op) {
      case 'hello':
        this.connectedNow = message.connected;
        this.shared = message.shared;
        this.helloed();
        return;
      case 'connection':
        if (message.connected === this.connectedNow) return;
        this.connectedNow = message.connected;
        for (const listener of this.connectionListeners) listener(message.connected);
        return;
      case 'reply': {
        const waiting = this.replies.get(message.id);
        this.replies.delete(message.id);
        if (message.error === undefined) waiting?.resolve();
        else waiting?.reject(message.refused ? new MessageRefused(message.error) : new Error(message.error));
        return;
      }
      case 'deliveries':
        this.deliver(message);
        return;
      case 'closed':
        this.closed();
        return;
    }
  }

  private deliver(turn: Extract<ToWorker, { op: 'deliveries' }>): void {
    let start = 0;
    for (let i = 0; i < turn.ids.length; i++) {
      const id = turn.ids[i]!;
      const topic = turn.topics[i]!;
      const payload = Buffer.from(turn.bytes, start, turn.ends[i]! - start);
      start = turn.ends[i]!;
      const handler = this.routes.get(turn.subscriptions[i]!);
      if (handler === undefined) {
        // Unsubscribed while it was on its way: not handled here, so not acknowledged.
        this.refusedUnsubscribed++;
        this.outcome(id, new MessageRefused('unsubscribed'), false);
        continue;
      }
      let decoded: Decoded | undefined;
      const decodeOnce = (): Decoded => (decoded ??= decode(topic, payload));
      let handled: void | Promise<void>;
      try {
        handled = handler(topic, payload, decodeOnce);
      } catch (err) {
        this.outcome(id, err);
        continue;
      }
      if (handled === undefined) this.outcome(id);
      else handled.then(() => this.outcome(id), (err: unknown) => this.outcome(id, err));
    }
  }

  /** Posts the outcomes gathered so far (at the end of the turn, or before a close). */
  private postOutcomes(): void {
    const turn = this.outcomes;
    this.outcomes = undefined;
    if (turn !== undefined && !this.closedNow) this.port.postMessage({ op: 'outcomes', ...turn } satisfies ToMain);
  }

  private outcome(id: number, err?: unknown, countRefusal = true): void {
    if (this.outcomes === undefined) {
      this.outcomes = { done: [], refused: [] };
      setImmediate(() => this.postOutcomes());
    }
    if (err === undefined) {
      this.outcomes.done.push(id);
    } else if (err instanceof MessageRefused) {
      if (countRefusal) this.refused++;
      this.outcomes.refused.push([id, err.message]);
    } else {
      this.handlerErrors++;
      log.error({ err }, 'a subscriber failed to handle a message; it was acknowledged anyway');
      this.outcomes.done.push(id);
    }
  }
}
