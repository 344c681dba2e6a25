// Lets an in-process subscriber refuse a QoS 1 message so that its publisher gets no PUBACK
// (docs/broker.md#refusing-a-publish). Aedes 1.2.0 has no way for a subscriber to fail a
// publish: mqemitter calls a listener's `done` without an error and fastparallel drops any
// error anyway. What it does have, after every subscriber is done, is the `published` hook
// (`aedes.published(packet, client, done)`, public API): an error passed to its `done` ends the
// publish with that error. With scripts/patch-aedes.js the QoS 1 PUBACK is written only after a
// successful publish, so the error means no PUBACK; Aedes then treats it as a client error and
// closes the connection, and the client (QoS 1) sends the message again when it reconnects.
// Nothing is held: the subscribers' deliveries end at once, the others got the message.
//
// A close without DISCONNECT publishes the client's will (lib/client.js, `close`), and a
// device's will is its retained `offline` status: every refused device would be reported offline
// and then online again, status rules would fire. So the hook drops the publisher's will before
// it fails the publish (Aedes keeps it in `client.will`, an internal checked at start).
//
// The link between what a subscriber got and what `published` gets is the payload Buffer:
// Aedes wraps the packet for its subscribers (aedes-packet) but keeps the payload by reference.
// That is an internal detail, so check() proves the whole path at start with a probe publish
// and fails loudly if an Aedes upgrade changed it.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Aedes, AedesPublishPacket, Client, PublishPacket } from 'aedes';
import { aedesFile } from './aedes-package.js';

/** Hands the refused message to the subscriber that refused it once more; rejects (MessageRefused) if it refuses again. */
export type Redelivery = () => Promise<void>;

export interface PublishRefusals {
  /**
   * Makes the publish of this (delivered) packet fail with `reason`: no PUBACK for its publisher.
   * `redeliver`, for an in-process publish (no client), is kept for its publisher: see takeRedeliveries.
   */
  refuse(packet: AedesPublishPacket, reason: Error, redeliver?: Redelivery): void;
  /** The redeliveries of the subscribers that refused the in-process publish of this payload (once; then forgotten). */
  takeRedeliveries(payload: Buffer): Redelivery[];
  /** Resolves once a probe publish showed that a refusal fails the publish; rejects if not. */
  readonly checked: Promise<void>;
}

const installed = new WeakMap<Aedes, PublishRefusals>();

/** The refusals of this broker (installed on first use: one `published` hook per broker). */
export function publishRefusals(aedes: Aedes): PublishRefusals {
  let refusals = installed.get(aedes);
  if (!refusals) {
    refusals = install(aedes);
    installed.set(aedes, refusals);
  }
  return refusals;
}

function install(aedes: Aedes): PublishRefusals {
  const previous = aedes.published;
  if (typeof previous !== 'function') {
    throw new Error('aedes changed (aedes.published is not a function): broker/refusals.ts must be revisited for the new version');
  }
  assertWillField();
  const refused = new WeakMap<object, { reason: Error; redeliveries: Redelivery[] }>();
  // Kept from the end of an in-process publish until its publisher takes them (right after).
  const toRedeliver = new WeakMap<object, Redelivery[]>();
  aedes.published = function published(this: Aedes, packet, client, done) {
    const refusal = refused.get(packet.payload as object);
    if (refusal) {
      refused.delete(packet.payload as object);
      // The connection closes for this error: without its will, so the device is not reported offline.
      if (client) (client as Client & { will: unknown }).will = null;
      else if (refusal.redeliveries.length > 0) toRedeliver.set(packet.payload as object, refusal.redeliveries);
      done(refusal.reason);
      return;
    }
    previous.call(this, packet, client, done);
  };
  const mark = (packet: AedesPublishPacket, reason: Error, redeliver?: Redelivery): void => {
    const refusal = refused.get(packet.payload as object) ?? { reason, redeliveries: [] };
    if (redeliver) refusal.redeliveries.push(redeliver);
    refused.set(packet.payload as object, refusal);
  };
  // QoS 0 has no PUBACK to withhold: failing its publish would only close the publisher's connection.
  const refuse = (packet: AedesPublishPacket, reason: Error, redeliver?: Redelivery): void => {
    if (packet.qos > 0) mark(packet, reason, redeliver);
  };
  const takeRedeliveries = (payload: Buffer): Redelivery[] => {
    const redeliveries = toRedeliver.get(payload) ?? [];
    toRedeliver.delete(payload);
    return redeliveries;
  };
  const checked = check(aedes, mark);
  checked.catch(() => undefined); // reported to whoever subscribes (InProcessBus.subscribe awaits it), not as an unhandled rejection
  return { refuse, takeRedeliveries, checked };
}

/** Aedes 1.2.0 keeps a client's will in `client.will` and publishes it from there when the connection closes without DISCONNECT. */
function assertWillField(): void {
  const file = aedesFile('lib/client.js');
  const source = readFileSync(file, 'utf8');
  if (!source.includes('this.will = null') || !source.includes('const will = that.will')) {
    throw new Error(`aedes changed (${file} no longer keeps the will in client.will): broker/refusals.ts must be revisited for the new version, or every device the historian refuses is reported offline by its will`);
  }
}

/**
 * A probe publish on a topic of its own that a probe subscriber refuses: the publish must fail.
 * QoS 0, so that no offline session subscribed to `$SYS/#` gets it queued.
 */
function check(aedes: Aedes, mark: PublishRefusals['refuse']): Promise<void> {
  const topic = `$SYS/linewatch/refusal-check/${randomUUID()}`;
  const reason = new Error('refusal check');
  const probe = (packet: AedesPublishPacket, done: () => void): void => {
    mark(packet, reason);
    done();
  };
  return new Promise<void>((resolve, reject) => {
    aedes.subscribe(topic, probe, () => {
      const packet: PublishPacket = { cmd: 'publish', topic, payload: Buffer.from('check'), qos: 0, retain: false, dup: false };
      aedes.publish(packet, (err) => {
        aedes.unsubscribe(topic, probe, () => undefined);
        if (err === reason) resolve();
        else reject(new Error(`aedes internals changed (a refused publish ended with ${err ? `"${err.message}"` : 'no error'}: the payload is no longer passed by reference to subscribers, or \`published\` errors are ignored): broker/refusals.ts must be revisited for the new version`));
      });
    });
  });
}
