// The per-session queue limit (`broker.sessionQueue`), around any store (memory, disk, redis):
// at most `maxMessages` messages queued for one client's session (offline, or delivered and not
// yet acknowledged). Policy `drop-newest` (Mosquitto's max_queued_messages does the same): a
// message that would go over the limit is not queued for that session — the other sessions get
// it, the publisher gets its PUBACK — and it is counted (`session_queue_dropped`), logged at warn
// at a bounded rate naming the client, and the session is listed as full (broker health
// `degraded`, `$SYS/linewatch/session_queue/full`) until its queue is below 90 % of the limit. An
// online persistent client whose queue is full still gets such a message live, but nothing keeps
// it (a broker restart before its PUBACK loses it); see docs/broker.md#session-queue-limit.
//
// The wrapper counts each session's queue itself, so it works on every store through the
// persistence interface alone: +1 for each queued copy, −1 when `outgoingClearMessageId` returns
// the packet it removed (the interface's contract; memory, level and redis return it). A session
// first seen since start (a disk store after a restart) is counted once by reading its queue
// (`outgoingStream`); the enqueues for that session wait for that count.
import type { LogLimiter } from '../../lib/log-limit.js';
import type { AedesPersistence } from './types.js';
import { withStoreOverrides } from './store-overrides.js';

export const OVERFLOW_POLICIES = ['drop-newest'] as const;
export type OverflowPolicy = (typeof OVERFLOW_POLICIES)[number];

export interface SessionQueueLimit {
  maxMessages: number;
  overflow: OverflowPolicy;
}

interface Sub {
  clientId: string;
}
interface ClientRef {
  id: string;
}
interface StorePacket {
  cmd?: string;
}

/** The part of the persistence interface the wrapper changes (aedes-persistence's async API, which aedes 1.2.0 calls). */
interface OutgoingStore {
  outgoingEnqueue(sub: Sub, packet: StorePacket): Promise<unknown>;
  outgoingEnqueueCombi(subs: readonly Sub[], packet: StorePacket): Promise<unknown>;
  outgoingUpdate(client: ClientRef, packet: StorePacket): Promise<unknown>;
  outgoingClearMessageId(client: ClientRef, packet: StorePacket): Promise<unknown>;
  outgoingStream(client: ClientRef): AsyncIterable<unknown>;
}

const WRAPPED = ['outgoingEnqueue', 'outgoingEnqueueCombi', 'outgoingUpdate', 'outgoingClearMessageId', 'outgoingStream'] as const;

/** A full session counts as full until its queue is below this share of the limit (so one acknowledgement does not flip health back and forth). */
export const FULL_UNTIL_BELOW = 0.9;

/** How many full sessions a health reason names (the count is exact). */
const NAMED_IN_REASON = 5;

export class QueueLimit {
  /** Messages not queued for a session because its queue was full, since start. */
  dropped = 0;
  /** Queued messages per session, as counted by this wrapper (a Promise while a session's queue is being counted). */
  private readonly counts = new Map<string, number | Promise<number>>();
  /** Sessions at the limit that had a message dropped, with how many since they filled. */
  private readonly full = new Map<string, number>();

  constructor(
    readonly limit: SessionQueueLimit,
    private readonly limitedLog: LogLimiter | undefined,
  ) {}

  /** The sessions whose queue is full now, for health() and $SYS. */
  fullSessions(): string[] {
    return [...this.full.keys()];
  }

  /** Messages queued over every session this broker has seen since start. */
  queued(): number {
    let total = 0;
    for (const count of this.counts.values()) if (typeof count === 'number') total += count;
    return total;
  }

  /** A degraded health reason while some session is full, naming the key to change. */
  healthReason(): string | undefined {
    const full = this.fullSessions();
    if (full.length === 0) return undefined;
    const named = full.slice(0, NAMED_IN_REASON).join(', ');
    const more = full.length > NAMED_IN_REASON ? ` and ${full.length - NAMED_IN_REASON} more` : '';
    return `${full.length} session queue(s) full (${named}${more}): new messages for them are dropped (broker.sessionQueue.maxMessages ${this.limit.maxMessages}); bring the client back or raise the limit`;
  }

  /** `store` with the limit applied: the same object for every method but the outgoing ones. */
  wrap<T extends AedesPersistence>(store: T): T {
    const inner = store as unknown as OutgoingStore;
    for (const name of WRAPPED) {
      if (typeof inner[name] !== 'function') throw new Error(`the broker store has no ${name}(): broker/persistence/queue-limit.ts wraps aedes-persistence's async interface`);
    }
    const overrides: OutgoingStore = {
      outgoingEnqueue: async (sub, packet) => {
        if (this.admitNow(sub.clientId) ?? (await this.admitCounted(sub.clientId, inner))) await inner.outgoingEnqueue(sub, packet);
      },
      outgoingEnqueueCombi: async (subs, packet) => {
        const kept: Sub[] = [];
        for (const sub of subs) if (this.admitNow(sub.clientId) ?? (await this.admitCounted(sub.clientId, inner))) kept.push(sub);
        if (kept.length > 0) await inner.outgoingEnqueueCombi(kept, packet);
      },
      outgoingUpdate: async (client, packet) => {
        try {
          await inner.outgoingUpdate(client, packet);
        } catch (err) {
          // A message this wrapper did not queue for a full session, delivered to it live:
          // Aedes's outgoingUpdate finds nothing and would close the client; send it anyway.
          if (packet.cmd === 'publish' && this.full.has(client.id)) return;
          throw err;
        }
      },
      outgoingClearMessageId: async (client, packet) => {
        const removed = await inner.outgoingClearMessageId(client, packet);
        if (removed) this.release(client.id);
        return removed;
      },
      outgoingStream: (client) => inner.outgoingStream(client),
    };
    return withStoreOverrides(store, overrides);
  }

  /** Whether one more message may be queued for `clientId` (counted if so, dropped and reported if not); undefined while its queue is not counted yet. */
  private admitNow(clientId: string): boolean | undefined {
    const count = this.counts.get(clientId);
    if (typeof count !== 'number') return undefined;
    if (count < this.limit.maxMessages) {
      this.counts.set(clientId, count + 1);
      return true;
    }
    this.drop(clientId, count);
    return false;
  }

  /** admitNow once the session's queue is counted (read once per session since start). */
  private async admitCounted(clientId: string, store: OutgoingStore): Promise<boolean> {
    let counting = this.counts.get(clientId);
    if (counting === undefined) {
      counting = countQueue(store, clientId);
      this.counts.set(clientId, counting);
      try {
        this.counts.set(clientId, await counting);
      } catch (err) {
        this.counts.delete(clientId);
        throw err;
      }
    } else if (typeof counting !== 'number') {
      await counting;
    }
    return this.admitNow(clientId) ?? this.admitCounted(clientId, store);
  }

  private drop(clientId: string, queued: number): void {
    this.dropped++;
    const droppedHere = (this.full.get(clientId) ?? 0) + 1;
    this.full.set(clientId, droppedHere);
    this.limitedLog?.write(
      'warn',
      'session_queue_overflow',
      { clientId, queued, maxMessages: this.limit.maxMessages, droppedSinceFull: droppedHere },
      `session queue of ${clientId} is full (${queued} messages, broker.sessionQueue.maxMessages ${this.limit.maxMessages}): a new message for it was dropped (overflow: ${this.limit.overflow}); the client is offline or not acknowledging`,
    );
  }

  private release(clientId: string): void {
    const count = this.counts.get(clientId);
    if (typeof count !== 'number') return; // still being counted: the count reads the queue as it is then
    const next = Math.max(0, count - 1);
    this.counts.set(clientId, next);
    if (next < this.limit.maxMessages * FULL_UNTIL_BELOW) this.full.delete(clientId);
  }
}

async function countQueue(store: OutgoingStore, clientId: string): Promise<number> {
  let count = 0;
  for await (const packet of store.outgoingStream({ id: clientId })) if (packet) count++;
  return count;
}
