// `broker.persistence: memory`: aedes-persistence's in-memory store (what Aedes uses when given
// none) with its outgoing queues replaced by linear ones. Why (docs/broker.md#persistence):
//
// aedes-persistence 11 keeps each client's outgoing queue in one array. `outgoingUpdate` (every
// delivery to a persistent subscriber, to give the queued packet its messageId) scans it from the
// head for the packet's brokerId/brokerCounter, and `outgoingClearMessageId` (every PUBACK) scans
// it for the messageId and splices it out. While a backlog of N messages drains, each live
// message sits at the tail: both scans walk the whole backlog, so draining it costs O(N²), and the
// PUBACKs to the publishers (which wait for those deliveries) stall behind it.
//
// Here each client's queue is an insertion-ordered Map (O(1) append, delete and in-order
// iteration) with two indexes, each a Set of entries per key, oldest first: brokerId:brokerCounter
// (outgoingUpdate; the same message can be queued twice for one client) and messageId
// (outgoingClearMessageId; a long queue can hold several packets with one id once the 16-bit ids
// wrap, and upstream clears the oldest). The
// semantics are upstream's, case by case (see each method); the abstract suite that
// aedes-persistence ships runs against this class in `npm test`.
//
// The upstream class keeps its queues in private fields (#outgoing), so this subclass replaces
// every method that touches them. A version of aedes-persistence with another outgoing method,
// or without one of these, would read a queue this class never fills: the guard below refuses it
// at start.
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';

const require = createRequire(import.meta.url);

/** The packet fields the outgoing queue is keyed by (aedes-packet's Packet, or a PUBREL). */
export interface QueuedPacket {
  brokerId?: string;
  brokerCounter?: number;
  messageId?: number;
  [field: string]: unknown;
}

interface ClientRef {
  readonly id: string;
}

/** The upstream class as this file uses it (aedes-persistence/asyncPersistence.js). */
interface UpstreamMemory {
  setup(broker: unknown): Promise<void>;
  destroy(): Promise<void>;
}
type UpstreamMemoryClass = new (options?: object) => UpstreamMemory;

/** The outgoing methods of aedes-persistence 11's memory store: exactly those this class replaces. */
export const OUTGOING_METHODS = ['outgoingEnqueue', 'outgoingEnqueueCombi', 'outgoingUpdate', 'outgoingClearMessageId', 'outgoingStream'] as const;

const REVISIT = 'broker/persistence/memory.ts must be revisited for the new version';

/** aedes-persistence's memory store class, after checking it still has the shape this file replaces. */
export function upstreamMemoryClass(): UpstreamMemoryClass {
  const version = (require('aedes-persistence/package.json') as { version: string }).version;
  if (!/^11\./.test(version)) throw new Error(`aedes-persistence ${version} is installed, the linear memory store was written for 11.x: ${REVISIT}`);
  const upstream = require('aedes-persistence/asyncPersistence.js') as UpstreamMemoryClass;
  assertOutgoingShape(upstream);
  return upstream;
}

/** Refuses a class whose outgoing methods are not exactly OUTGOING_METHODS (they would read queues this store never fills). */
export function assertOutgoingShape(upstream: unknown): void {
  const prototype = (upstream as { prototype?: object } | undefined)?.prototype;
  if (typeof upstream !== 'function' || !prototype) throw new Error(`aedes-persistence/asyncPersistence.js no longer exports a class: ${REVISIT}`);
  const outgoing = Object.getOwnPropertyNames(prototype).filter((name) => name.startsWith('outgoing')).sort();
  const expected = [...OUTGOING_METHODS].sort();
  const missing = expected.filter((name) => typeof (prototype as Record<string, unknown>)[name] !== 'function');
  if (missing.length > 0 || outgoing.join() !== expected.join()) {
    throw new Error(`aedes-persistence's memory store has the outgoing methods [${outgoing.join(', ')}], the linear store replaces exactly [${expected.join(', ')}]: ${REVISIT}`);
  }
}

interface Entry {
  packet: QueuedPacket;
  /** The id it is indexed under in byMessageId (undefined until a delivery gives it one). */
  indexedId: number | undefined;
  /** The brokerId:brokerCounter it is indexed under in byBroker. */
  indexedBrokerKey: string;
}

/** Entries by a key, several per key in insertion order (Sets: O(1) add, delete and first). */
class MultiIndex<K> {
  private readonly byKey = new Map<K, Set<Entry>>();

  add(key: K, entry: Entry): void {
    let set = this.byKey.get(key);
    if (!set) {
      set = new Set();
      this.byKey.set(key, set);
    }
    set.add(entry);
  }

  delete(key: K, entry: Entry): void {
    const set = this.byKey.get(key);
    if (!set) return;
    set.delete(entry);
    if (set.size === 0) this.byKey.delete(key);
  }

  /** The entries under `key`, oldest first. */
  all(key: K): Iterable<Entry> {
    return this.byKey.get(key) ?? [];
  }

  first(key: K): Entry | undefined {
    return this.byKey.get(key)?.values().next().value;
  }
}

/** One client's outgoing queue, with its two indexes. */
class OutgoingQueue {
  /** In queue order (a Set iterates in insertion order; delete is O(1)). */
  readonly entries = new Set<Entry>();
  private readonly byBroker = new MultiIndex<string>();
  private readonly byMessageId = new MultiIndex<number | undefined>();

  push(packet: QueuedPacket): void {
    const entry: Entry = { packet, indexedId: packet.messageId, indexedBrokerKey: brokerKey(packet) };
    this.entries.add(entry);
    this.index(entry);
  }

  /** The oldest entry with this packet's brokerId and brokerCounter. */
  findByBroker(packet: QueuedPacket): Entry | undefined {
    return this.byBroker.first(brokerKey(packet));
  }

  /** The entries with this messageId, oldest first. */
  withId(messageId: number | undefined): Iterable<Entry> {
    return this.byMessageId.all(messageId);
  }

  oldestWithId(messageId: number | undefined): Entry | undefined {
    return this.byMessageId.first(messageId);
  }

  setMessageId(entry: Entry, messageId: number | undefined): void {
    this.byMessageId.delete(entry.indexedId, entry);
    entry.packet.messageId = messageId;
    entry.indexedId = messageId;
    this.byMessageId.add(messageId, entry);
  }

  /** Replaces an entry's packet in place (a PUBREL replacing its PUBLISH keeps the queue position). */
  replace(entry: Entry, packet: QueuedPacket): void {
    this.unindex(entry);
    entry.packet = packet;
    entry.indexedId = packet.messageId;
    entry.indexedBrokerKey = brokerKey(packet);
    this.index(entry);
  }

  remove(entry: Entry): void {
    this.entries.delete(entry);
    this.unindex(entry);
  }

  private index(entry: Entry): void {
    this.byBroker.add(entry.indexedBrokerKey, entry);
    this.byMessageId.add(entry.indexedId, entry);
  }

  private unindex(entry: Entry): void {
    this.byBroker.delete(entry.indexedBrokerKey, entry);
    this.byMessageId.delete(entry.indexedId, entry);
  }
}

function brokerKey(packet: QueuedPacket): string {
  return `${packet.brokerId ?? ''}\u0000${packet.brokerCounter ?? ''}`;
}

type PacketClass = new (packet: QueuedPacket) => QueuedPacket;

/** Creates the linear memory store (an instance of a subclass of aedes-persistence's memory store). */
export function createLinearMemoryPersistence(upstream: UpstreamMemoryClass = upstreamMemoryClass()): UpstreamMemory {
  const Packet = require('aedes-packet') as PacketClass;
  class LinearMemoryPersistence extends upstream {
    private readonly queues = new Map<string, OutgoingQueue>();

    private queueOf(clientId: string): OutgoingQueue {
      let queue = this.queues.get(clientId);
      if (!queue) {
        queue = new OutgoingQueue();
        this.queues.set(clientId, queue);
      }
      return queue;
    }

    async outgoingEnqueue(sub: { clientId: string }, packet: QueuedPacket): Promise<void> {
      this.queueOf(sub.clientId).push(new Packet(packet));
    }

    async outgoingEnqueueCombi(subs: readonly { clientId: string }[], packet: QueuedPacket): Promise<void> {
      for (const sub of subs) this.queueOf(sub.clientId).push(new Packet(packet));
    }

    /**
     * Upstream: the first queued packet with the same brokerId and brokerCounter gets the
     * packet's messageId; failing that, the first one of *another* broker id with the same
     * messageId is replaced by the packet (a PUBREL, which has no broker id, replacing its
     * PUBLISH); failing that, 'no such packet'. (Upstream takes whichever of the two comes first
     * in the queue; this takes the first kind first. They differ only if one queue holds a packet
     * of this broker with this brokerCounter and, before it, one of another broker with this
     * messageId — never for a PUBREL, whose broker id is undefined.)
     */
    async outgoingUpdate(client: ClientRef, packet: QueuedPacket): Promise<void> {
      const queue = this.queueOf(client.id);
      const sameMessage = queue.findByBroker(packet);
      if (sameMessage) {
        queue.setMessageId(sameMessage, packet.messageId);
        return;
      }
      for (const entry of queue.withId(packet.messageId)) {
        // Same broker id, another counter: upstream skips those.
        if (entry.packet.brokerId === packet.brokerId) continue;
        queue.replace(entry, packet);
        return;
      }
      throw new Error('no such packet');
    }

    /** Upstream: removes and returns the first queued packet with this messageId (undefined if none). */
    async outgoingClearMessageId(client: ClientRef, packet: QueuedPacket): Promise<QueuedPacket | undefined> {
      const queue = this.queues.get(client.id);
      const entry = queue?.oldestWithId(packet.messageId);
      if (!queue || !entry) return undefined;
      queue.remove(entry);
      return entry.packet;
    }

    /** A snapshot of the client's queue in order (upstream clones the array for the same reason). */
    outgoingStream(client: ClientRef): Readable {
      const queue = this.queues.get(client.id);
      return Readable.from(queue ? [...queue.entries].map((entry) => entry.packet) : []);
    }

    override async destroy(): Promise<void> {
      this.queues.clear();
      await super.destroy();
    }
  }
  return new LinearMemoryPersistence();
}
