// Publishes that authorizePublish refused (ACL or schema) are acknowledged but forwarded to
// nobody (docs/broker.md#dropping-a-refused-publish). Aedes 1.2.0's authorizePublish can only
// let a publish through or fail it, and failing it closes the publisher's connection — one
// misconfigured topic would cut a device's other traffic. MQTT-3.3.5-2 allows ack-and-drop
// instead, so the broker's authorizePublish marks the packet and lets it through, and this
// wrapper around `aedes.publish` stops a marked packet there: Aedes's PUBLISH handler
// (lib/handlers/publish.js) and its will publish (lib/client.js) call `client.broker.publish`
// with the very packet object authorizePublish saw, and nothing else of it has happened yet
// (no retained store, no delivery). With scripts/patch-aedes.js the QoS 1 PUBACK is written
// once that publish calls back, so the publisher still gets it.
//
// That relies on Aedes internals: the publish signature `(packet, client, done)` (with
// `(packet, done)` as its short form), the handlers reaching it through the instance property,
// and the packet's identity from authorizePublish to publish. So the wrapper is installed only
// on the Aedes version it was written for, only over Aedes's own method of that arity, and a
// probe at start (a marked publish must reach no subscriber, an unmarked one must, and both must
// call back) fails the start loudly if the shape changed.
import { randomUUID } from 'node:crypto';
import type { Aedes, AedesPublishPacket, Client, PublishPacket } from 'aedes';
import { waitFor, withTimeout } from '../lib/wait.js';
import { AEDES_VERSION, installedAedesVersion } from './aedes-package.js';

/** Aedes's publish with its client argument, which its typings leave out. */
export type AedesPublish = (packet: PublishPacket, client: Client | null, done: (err?: Error) => void) => void;

/** What of Aedes the wrapper touches (the real Aedes, or a fake one in the guard's tests). */
export type AedesPublisher = Pick<Aedes, 'publish' | 'subscribe' | 'unsubscribe'>;

export interface RefusedPublishDrop {
  /** Marks a packet authorizePublish lets through: it is acknowledged and forwarded to nobody. */
  drop(packet: PublishPacket): void;
  /** Aedes's own publish, never dropped: for the broker's own messages (dead letters, stats). */
  readonly publish: AedesPublish;
}

/** How long the start-up probe may take (it runs in memory: a few milliseconds). */
const PROBE_TIMEOUT_MS = 5000;

const REVISIT = 'broker/drop-refused.ts must be revisited for the new version';

export async function installRefusedPublishDrop(aedes: AedesPublisher, version = installedAedesVersion()): Promise<RefusedPublishDrop> {
  if (version !== AEDES_VERSION) {
    throw new Error(`aedes ${version} is installed but broker/drop-refused.ts is written for aedes ${AEDES_VERSION} (it wraps aedes.publish): ${REVISIT}`);
  }
  const own = aedes.publish as unknown as AedesPublish;
  if (typeof own !== 'function' || own.length !== 3 || Object.prototype.hasOwnProperty.call(aedes, 'publish')) {
    throw new Error(`aedes changed (aedes.publish is not its own method of (packet, client, done): ${typeof own === 'function' ? `${own.length} parameters${Object.prototype.hasOwnProperty.call(aedes, 'publish') ? ', already replaced on the instance' : ''}` : typeof own}): ${REVISIT}`);
  }
  const publish: AedesPublish = own.bind(aedes);
  const dropped = new WeakSet<object>();
  const wrapped: AedesPublish = (packet, client, done) => {
    if (typeof client === 'function') return publish(packet, null, client as (err?: Error) => void); // the (packet, done) form
    if (dropped.has(packet)) {
      dropped.delete(packet);
      return done?.();
    }
    publish(packet, client, done);
  };
  (aedes as unknown as { publish: AedesPublish }).publish = wrapped;
  const drop = (packet: PublishPacket): void => {
    dropped.add(packet);
  };
  await probe(aedes, drop);
  return { drop, publish };
}

/** A dropped probe publish reaches no subscriber, a kept one does, and both call back; throws if not. */
async function probe(aedes: AedesPublisher, drop: (packet: PublishPacket) => void): Promise<void> {
  const topic = `$SYS/linewatch/drop-check/${randomUUID()}`;
  const received: string[] = [];
  const listener = (packet: AedesPublishPacket, done: () => void): void => {
    received.push(String(packet.payload));
    done();
  };
  const publishProbe = (payload: string, dropIt: boolean): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      // QoS 0: no offline session subscribed to `$SYS/#` gets it queued.
      const packet: PublishPacket = { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false };
      if (dropIt) drop(packet);
      // Through the instance property, as Aedes's handlers call it: the wrapper must be what it finds.
      (aedes.publish as unknown as AedesPublish).call(aedes, packet, null, (err) => (err ? reject(err) : resolve()));
    });
  try {
    await withTimeout(new Promise<void>((resolve) => aedes.subscribe(topic, listener, resolve)), PROBE_TIMEOUT_MS, 'the drop probe subscription');
    await withTimeout(publishProbe('dropped', true), PROBE_TIMEOUT_MS, 'the dropped probe publish to call back');
    await withTimeout(publishProbe('kept', false), PROBE_TIMEOUT_MS, 'the kept probe publish to call back');
    // Through a cluster's Redis (broker/cluster.ts) the publish calls back before the message comes back to its subscriber.
    await waitFor(() => received.includes('kept'), PROBE_TIMEOUT_MS, 'the kept probe publish to reach its subscriber', 1).catch(() => undefined);
  } catch (err) {
    throw new Error(`aedes internals changed (a probe publish failed: ${(err as Error).message}): ${REVISIT}`, { cause: err });
  } finally {
    aedes.unsubscribe(topic, listener, () => undefined);
  }
  if (received.join(',') !== 'kept') {
    throw new Error(`aedes internals changed (the probe subscriber got [${received.join(', ')}] where only "kept" should arrive): ${REVISIT}`);
  }
}
