// A persistent subscriber's backlog, sent with up to DRAIN_WINDOW messages under way instead of
// one at a time (docs/broker.md#persistence, "Where a persistent subscriber's time went").
//
// When a client with a persistent session connects, Aedes 1.2.0 sends what was queued for it in
// `emptyQueue` (lib/handlers/connect.js): a pipeline of `persistence.outgoingStream(client)`
// through a transform that, for each queued message in turn, gives it a messageId (QoSPacket),
// awaits `persistence.outgoingUpdate`, writes the PUBLISH and waits for the write's callback
// (setImmediate) before it reads the next. So every message costs a store round trip plus event
// loop turns, one after the other: ~4 LevelDB operations in sequence for the disk store, which
// caps the drain at ~1.3k messages/s whatever the CPU (the broker idles in between) — slower
// than a 3k events/s line fills the queue while it drains.
//
// Here the store's outgoingStream, when Aedes's emptyQueue asks it for a connecting client, hands
// Aedes an empty stream that ends only once this file has sent the backlog itself, as emptyQueue
// does (same messageIds, same outgoingUpdate before each write, same authorizeForward, the same
// clear for a clean or unauthorized client, the same error on a failed update — except a message
// no longer queued, which is skipped: isGone below) but with
// the updates of up to DRAIN_WINDOW messages under way at once; the PUBLISHes still go out in
// queue order (each write waits for the previous one), and a failed write (the client went away)
// ends the drain with the error, as in Aedes. Aedes's connect sequence is unchanged: it still
// completes (and emits clientReady) after the backlog went out.
//
// It relies on Aedes 1.2.0's internals: emptyQueue's text (checked at start, guardDrainInternals),
// lib/qos-packet.js and lib/write.js (loaded by path: the package exports only its entry), and
// the Client fields it uses. A changed Aedes stops the start with a message naming this file.
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { AEDES_VERSION, aedesFile, installedAedesVersion } from './aedes-package.js';
import type { AedesPersistence } from './persistence/types.js';
import { withStoreOverrides } from './persistence/store-overrides.js';

/**
 * Queued messages whose store update and write may be under way at once during a drain. The
 * drain rate grows with it (disk store, 30k backlog, busy 2-core machine: 2.9k/s at 64, 3.8k/s
 * at 256, 4.8k/s at 1024); what it costs is the messages held meanwhile, bounded by bytes too.
 */
export const DRAIN_WINDOW = 1024;
/** Payload bytes under way at once during a drain: a window of large messages (firmware images) stops here first. */
export const DRAIN_WINDOW_BYTES = 4 * 1024 * 1024;

/** The lines of emptyQueue (aedes 1.2.0, lib/handlers/connect.js) this file replaces; all must be there. */
const EMPTY_QUEUE_TEXT = [
  'function emptyQueue (arg, done) {',
  'const outgoing = persistence.outgoingStream(client)',
  'through(function clearQueue (data, enc, next) {',
  'const packet = new QoSPacket(data, client)',
  'persistence.outgoingUpdate(client, packet)',
  "const authorized = (packet.cmd === 'publish')",
  'client.broker.authorizeForward(client, packet)',
  'if (client.clean || !authorized) {',
  'write(client, packet, next)',
];

interface QueuedPacket {
  cmd?: string;
  messageId?: number | null;
  dup?: boolean;
  payload?: { length: number } | string;
}

/** The Aedes Client fields emptyQueue uses (aedes 1.2.0 lib/client.js). */
interface DrainingClient {
  readonly id: string;
  readonly clean: boolean;
  readonly _nextId: number;
  readonly conn: object;
  readonly broker: {
    readonly persistence: DrainStore;
    authorizeForward(client: DrainingClient, packet: QueuedPacket): unknown;
  };
  emit(event: 'error', err: unknown): boolean;
}

interface DrainStore {
  outgoingStream(client: unknown): AsyncIterable<QueuedPacket>;
  outgoingUpdate(client: DrainingClient, packet: QueuedPacket): Promise<unknown>;
  outgoingClearMessageId(client: DrainingClient, packet: QueuedPacket): Promise<unknown>;
}

export interface DrainWindow {
  messages: number;
  bytes: number;
}

type QoSPacketClass = new (original: QueuedPacket, client: DrainingClient) => QueuedPacket;
type Write = (client: DrainingClient, packet: QueuedPacket, done: (err?: Error | null) => void) => void;

interface AedesDrainParts {
  QoSPacket: QoSPacketClass;
  write: Write;
}

/** Checks that Aedes's emptyQueue is the one this file replaces, and loads the two modules it uses. */
export async function guardDrainInternals(): Promise<AedesDrainParts> {
  const version = installedAedesVersion();
  const connect = readFileSync(aedesFile('lib/handlers/connect.js'), 'utf8');
  const missing = EMPTY_QUEUE_TEXT.filter((line) => !connect.includes(line));
  if (version !== AEDES_VERSION || missing.length > 0) {
    throw new Error(`aedes ${version}: lib/handlers/connect.js emptyQueue is not the one broker/windowed-drain.ts replaces (aedes ${AEDES_VERSION}${missing.length > 0 ? `; missing: ${missing.join(' | ')}` : ''}); revisit broker/windowed-drain.ts for the new version`);
  }
  const QoSPacket = ((await import(pathToFileURL(aedesFile('lib/qos-packet.js')).href)) as { default: unknown }).default;
  const write = ((await import(pathToFileURL(aedesFile('lib/write.js')).href)) as { default: unknown }).default;
  if (typeof QoSPacket !== 'function' || typeof write !== 'function') throw new Error(`aedes ${version}: lib/qos-packet.js or lib/write.js no longer export a function; revisit broker/windowed-drain.ts`);
  return { QoSPacket: QoSPacket as QoSPacketClass, write: write as Write };
}

/** Whether `client` is an Aedes Client (emptyQueue's caller), not a plain `{ id }` (queue-limit.ts counting a queue). */
function isAedesClient(client: unknown): client is DrainingClient {
  const candidate = client as Partial<DrainingClient> | null;
  return typeof candidate?._nextId === 'number' && typeof candidate.broker?.authorizeForward === 'function' && typeof candidate.conn === 'object';
}

/** `store` with outgoingStream(client) for a connecting Aedes client replaced by the windowed drain; everything else is the store's. */
export function withWindowedDrain<T extends AedesPersistence>(store: T, parts: AedesDrainParts, window: DrainWindow = { messages: DRAIN_WINDOW, bytes: DRAIN_WINDOW_BYTES }): T {
  const inner = store as unknown as DrainStore;
  if (typeof inner.outgoingStream !== 'function') throw new Error("the broker store has no outgoingStream(): broker/windowed-drain.ts wraps aedes-persistence's async interface");
  const outgoingStream = (client: unknown): Readable => {
    if (!isAedesClient(client)) return Readable.from(inner.outgoingStream(client));
    // The queue is asked for now, as emptyQueue does, so that it holds what was queued before the client's subscriptions went live.
    const ended = new Readable({ objectMode: true, read() {} });
    sendBacklog(client, inner.outgoingStream(client), parts, window).then(
      () => ended.push(null),
      (err: unknown) => ended.destroy(err instanceof Error ? err : new Error(String(err))),
    );
    return ended;
  };
  return withStoreOverrides(store, { outgoingStream });
}

/**
 * emptyQueue's work, `window` messages at a time (Aedes's transform gets an empty stream that
 * ends when this resolves, or fails with its error). Each message's PUBLISH is written once its update
 * resolved and the previous message's was written (queue order); the window counts messages
 * from their update to their write's callback, which waits for the socket to drain when it is
 * full, so a slow subscriber holds at most `window.messages` messages and about `window.bytes`
 * payload bytes of its backlog in the broker.
 */
async function sendBacklog(client: DrainingClient, queued: AsyncIterable<QueuedPacket>, parts: AedesDrainParts, window: DrainWindow): Promise<void> {
  const underWay: { sent: Promise<void>; bytes: number }[] = [];
  let bytesUnderWay = 0;
  let failure: { error: unknown } | undefined;
  let previousWritten: Promise<unknown> = Promise.resolve();
  for await (const data of queued) {
    if (failure) break;
    const packet = new parts.QoSPacket(data, client);
    // [MQTT-3.3.1-1]: a PUBLISH that went out before (it has a messageId: the store's outgoingUpdate
    // gave it one when it was sent) goes again with DUP set; Aedes 1.2.0 always sends DUP 0. One
    // queued while the client was away (no messageId yet: undefined in memory, null as the disk and
    // Redis stores read it back) is a first delivery: DUP 0. Packet ids are 1–65535.
    if (packet.cmd === 'publish' && typeof data.messageId === 'number' && data.messageId > 0) packet.dup = true;
    // Aedes calls the store through client.broker.persistence, the store as the broker was given it.
    const updated = client.broker.persistence.outgoingUpdate(client, packet).then(
      () => undefined,
      (err: unknown) => (isGone(err) ? GONE : { err }),
    );
    // Resolves once this message was handed to the socket, with the promise of its write's callback.
    const written = previousWritten.then(async () => {
      const updateFailed = await updated;
      return { sent: failure ? Promise.resolve() : send(client, packet, updateFailed, parts.write) };
    });
    previousWritten = written;
    const bytes = packet.payload?.length ?? 0;
    bytesUnderWay += bytes;
    underWay.push({
      sent: written
        .then((handed) => handed.sent)
        .catch((error: unknown) => {
          failure ??= { error };
        }),
      bytes,
    });
    while (underWay.length >= window.messages || (bytesUnderWay >= window.bytes && underWay.length > 0)) {
      const oldest = underWay.shift();
      if (oldest === undefined) break;
      await oldest.sent;
      bytesUnderWay -= oldest.bytes;
    }
  }
  await Promise.all(underWay.map((entry) => entry.sent));
  if (failure) throw failure.error;
}

/**
 * The store's answer (every store's, the abstract suite's contract) when the message is no longer
 * queued. A message published while the client connected is both in the queue this drain reads
 * and delivered live; when the drain reaches it (behind the whole backlog) the live copy is
 * usually acknowledged and cleared already. Aedes's emptyQueue then closes the client with this
 * error; here the message is skipped — there is nothing left to send.
 */
function isGone(err: unknown): boolean {
  return err instanceof Error && err.message === 'no such packet';
}
const GONE = 'gone';

/** emptyQueueFilter (aedes 1.2.0): the message is gone, its update failed, or it is cleared, or written; resolves at the write's callback. */
function send(client: DrainingClient, packet: QueuedPacket, updateFailed: { err: unknown } | typeof GONE | undefined, write: Write): Promise<void> {
  if (updateFailed === GONE) return Promise.resolve();
  if (updateFailed) {
    client.emit('error', updateFailed.err);
    return Promise.resolve();
  }
  const authorized = packet.cmd === 'publish' ? client.broker.authorizeForward(client, packet) : true;
  if (client.clean || !authorized) return client.broker.persistence.outgoingClearMessageId(client, packet).then(() => undefined);
  // write() hands the packet to the socket now (so the next one goes after it) and calls back later.
  return new Promise<void>((resolve, reject) => write(client, packet, (err) => (err ? reject(err) : resolve())));
}
