// Packet ids that are free (MQTT-2.3.1-2) for persistent sessions. Aedes 1.2.0 numbers each
// connection's outgoing QoS 1/2 messages from a counter that starts at a random value
// (`client._nextId` in aedes/lib/client.js, read and advanced in aedes/lib/qos-packet.js). After a
// persistent session reconnects, the messages it had not acknowledged are redelivered with their
// old ids (as they must be, MQTT-4.4.0-1), and new messages get ids from the new random counter —
// which can be an id still waiting for its PUBACK. The store then holds two messages with one id;
// the client's PUBACK for the new one clears the *oldest* message with that id
// (`outgoingClearMessageId`), and the other one is never acknowledged nor redelivered while the
// connection lives, and is lost when the client acknowledges its duplicate id later. A standalone
// historian reconnecting with a backlog lost blocks of 120–200 events this way
// (test/broker/packet-ids.test.ts reproduces it on a bare Aedes store).
//
// The fix, in our layer: for each persistent session this broker keeps the set of ids its store
// holds (read from the store once when the session authenticates, then kept by a wrapper around
// the store: `outgoingUpdate` adds the id it records, `outgoingClearMessageId` removes it), and
// each connection of a persistent session gets a `_nextId` that skips those ids. The counter
// still only moves forward, so an id freed by a PUBACK is not reused until the counter has gone
// round the whole id space (a late duplicate PUBACK cannot clear a newer message).
//
// Limit, stated and counted: MQTT has 65 535 ids and Aedes has no window for outgoing messages
// in flight (it sends a whole backlog), so a session with more than 65 535 unacknowledged messages
// at once has no free id; the next message then reuses one (counted in
// `packet_ids_exhausted`, logged at warn at a bounded rate). Cost: one Set lookup per outgoing
// QoS 1/2 message to a persistent session, one Set add and delete per stored message, and one read
// of the session's stored queue when it connects (Aedes reads it once more to redeliver it).
import type { AedesOptions, AuthenticateError } from 'aedes';
import { logger } from '../lib/log.js';
import type { LogLimiter } from '../lib/log-limit.js';
import type { AedesPersistence } from './persistence/types.js';
import { withStoreOverrides } from './persistence/store-overrides.js';

/** The largest MQTT packet id (ids are 1–65535). */
export const MAX_PACKET_ID = 65535;

interface ClientRef {
  id: string;
}
interface StoredPacket {
  messageId?: number;
}
interface TrackedStore {
  outgoingUpdate(client: ClientRef, packet: StoredPacket): Promise<unknown>;
  outgoingClearMessageId(client: ClientRef, packet: StoredPacket): Promise<unknown>;
  outgoingStream(client: ClientRef): AsyncIterable<unknown>;
}
const USED = ['outgoingUpdate', 'outgoingClearMessageId', 'outgoingStream'] as const;

/** The part of an Aedes client this module reads and changes. */
export interface PacketIdClient {
  id: string;
  clean: boolean;
}

export interface PacketIdsOptions {
  /** Read each session's ids from the store at every connect, not once per process (a cluster: other nodes change the store). */
  readonly rereadOnConnect: boolean;
  readonly limitedLog?: LogLimiter;
}

export class PacketIds {
  /** Times a persistent session had no free packet id and one in use was given again (more than 65 535 unacknowledged). */
  exhausted = 0;
  /** Ids skipped because the store still held a message with that id. */
  skipped = 0;
  /** Ids the store holds, per persistent session (client id). */
  private readonly inUse = new Map<string, Set<number>>();
  private store: TrackedStore | undefined;

  constructor(private readonly options: PacketIdsOptions) {}

  /** `store` with the ids it records tracked per session: the same object for every other method. */
  wrap<T extends AedesPersistence>(store: T): T {
    const inner = store as unknown as TrackedStore;
    for (const name of USED) {
      if (typeof inner[name] !== 'function') throw new Error(`the broker store has no ${name}(): broker/packet-ids.ts tracks ids through aedes-persistence's async interface`);
    }
    this.store = inner;
    const overrides: Pick<TrackedStore, 'outgoingUpdate' | 'outgoingClearMessageId'> = {
      outgoingUpdate: async (client, packet) => {
        const ids = this.inUse.get(client.id);
        if (ids && typeof packet.messageId === 'number') ids.add(packet.messageId);
        return inner.outgoingUpdate(client, packet);
      },
      outgoingClearMessageId: async (client, packet) => {
        const removed = await inner.outgoingClearMessageId(client, packet);
        if (typeof packet.messageId === 'number') this.inUse.get(client.id)?.delete(packet.messageId);
        return removed;
      },
    };
    return withStoreOverrides(store, overrides);
  }

  /**
   * Called once a client has authenticated (Aedes has set `clean` and `id`), before its session is
   * restored and its queue redelivered: a clean session forgets the ids; a persistent one reads
   * them (once per process, or at every connect in a cluster) and numbers from free ids.
   */
  async prepare(client: PacketIdClient): Promise<void> {
    if (client.clean) {
      this.inUse.delete(client.id);
      return;
    }
    let ids = this.inUse.get(client.id);
    if (ids === undefined || this.options.rereadOnConnect) {
      ids = await this.readStoredIds(client.id);
      this.inUse.set(client.id, ids);
    }
    this.numberFromFreeIds(client, ids);
  }

  /**
   * A connection of `clientId` ended: a session with no message waiting for a PUBACK is forgotten,
   * so the table holds only sessions with ids in use (each has messages in the store), not every
   * client id ever seen. Its next connection reads its ids from the store again. A connection of the
   * same id already numbering (a takeover) keeps its own Set: it only misses the ids of its own new
   * messages, which its forward-only counter reaches again only after 65 535 more.
   */
  forget(clientId: string): void {
    if (this.inUse.get(clientId)?.size === 0) this.inUse.delete(clientId);
  }

  /** Sessions tracked now (for tests: the table's size). */
  get sessions(): number {
    return this.inUse.size;
  }

  /** Ids tracked for a session now (for tests and health: how many messages wait for a PUBACK). */
  idsInUse(clientId: string): number {
    return this.inUse.get(clientId)?.size ?? 0;
  }

  private async readStoredIds(clientId: string): Promise<Set<number>> {
    if (!this.store) throw new Error('broker/packet-ids.ts: prepare() before wrap(): the store is not wrapped');
    const ids = new Set<number>();
    for await (const packet of this.store.outgoingStream({ id: clientId })) {
      const messageId = (packet as StoredPacket | undefined)?.messageId;
      if (typeof messageId === 'number') ids.add(messageId);
    }
    return ids;
  }

  /** Replaces the client's `_nextId` counter with one that skips the session's ids in use. */
  private numberFromFreeIds(client: PacketIdClient, ids: Set<number>): void {
    const own = Object.getOwnPropertyDescriptor(client, '_nextId');
    let cursor: number;
    if (own && 'value' in own && typeof own.value === 'number' && own.writable === true) {
      cursor = own.value;
    } else if (own?.get && (own.get as { packetIds?: true }).packetIds) {
      return; // already numbered by us (prepare twice on one connection)
    } else {
      throw new Error(
        "aedes client._nextId is not an own numeric property any more (aedes/lib/client.js, lib/qos-packet.js): broker/packet-ids.ts must be revisited, or persistent sessions can lose messages to reused packet ids",
      );
    }
    const free = (): number => {
      if (ids.size >= MAX_PACKET_ID) {
        this.exhausted++;
        this.options.limitedLog?.write(
          'warn',
          'packet_ids_exhausted',
          { clientId: client.id, inFlight: ids.size },
          `session ${client.id} has ${ids.size} messages waiting for their PUBACK, every MQTT packet id: a new message reuses one (an acknowledgement can then clear the wrong message); the client is not acknowledging`,
        );
        return cursor;
      }
      while (ids.has(cursor)) {
        this.skipped++;
        cursor = cursor >= MAX_PACKET_ID ? 1 : cursor + 1;
      }
      return cursor;
    };
    // Aedes reads `_nextId` (twice) and then sets it to the next value (`++`, or 1 after 65535):
    // the getter is idempotent (it settles on the next free id) and the setter moves the cursor.
    const get = Object.assign(() => free(), { packetIds: true as const });
    Object.defineProperty(client, '_nextId', {
      configurable: true,
      enumerable: true,
      get,
      set: (next: number) => {
        cursor = Number.isInteger(next) && next >= 1 && next <= MAX_PACKET_ID ? next : 1;
      },
    });
  }
}

type Authenticate = NonNullable<AedesOptions['authenticate']>;

/**
 * Aedes's authenticate hook followed, for an accepted client, by `packetIds.prepare` (Aedes sets
 * `clean` and `id` before it authenticates, and restores the session after): so only an
 * authenticated client makes the broker read a session's queue. If the store cannot be read the
 * client is refused with "server unavailable" (3) and it is logged.
 */
export function withFreePacketIds(authenticate: Authenticate, packetIds: PacketIds): Authenticate {
  return (client, username, password, done) => {
    authenticate(client, username, password, (err, ok) => {
      if (err || !ok) return done(err, ok);
      packetIds.prepare(client).then(
        () => done(null, true),
        (prepareErr: unknown) => {
          logger('broker').error({ err: prepareErr, clientId: client.id }, 'could not number the packets of a persistent session (broker/packet-ids.ts): the connection is refused');
          const message = prepareErr instanceof Error ? prepareErr.message : String(prepareErr);
          done(Object.assign(new Error(message), { returnCode: 3 }) as AuthenticateError, false);
        },
      );
    });
  };
}
