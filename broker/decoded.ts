// What the broker decoded, handed on to its in-process subscribers so that a message is
// JSON-parsed and schema-checked once (docs/architecture.md, "Decoded once"). The broker decodes
// every publish it validates (authorizePublish); InProcessBus looks the result up when a
// subscriber asks for it, and decodes (once, for all its subscribers) what the broker did not:
// publishes from inside the process, or every message with broker.validatePayloads off.
//
// The link between what authorizePublish saw and what a subscriber gets is the payload Buffer:
// Aedes hands the same packet from its PUBLISH handler to `publish` (the broker's dropped set
// relies on that too) and wraps it for subscribers (aedes-packet) keeping the payload by reference.
// That is an internal detail, so check() proves it at start with a probe publish and fails loudly
// if an Aedes upgrade changed it, as broker/refusals.ts does.
import { randomUUID } from 'node:crypto';
import type { Aedes, AedesPublishPacket, PublishPacket } from 'aedes';
import { decode, type Decoded } from '../contracts/decode.js';

/**
 * Where a payload carries what was decoded of it: a property of the Buffer itself, under a symbol
 * no one else has, gone with the Buffer. It was a WeakMap keyed by the payload, whose set() on
 * every publish was 3 % of the broker's busy time at 20k msgs/s, beside the GC work a weak table
 * adds (profile, docs/broker.md#cost-per-message); a property costs one store on an object whose
 * shape all payloads share.
 */
const DECODED = Symbol('linewatch.decoded');
interface Carrier {
  [DECODED]?: { topic: string; decoded: Decoded };
}

export class DecodedMessages {
  /** Messages decoded here (by the broker validating a publish, or by the bus for what it had not validated). */
  decodes = 0;
  /** Deliveries that used a message decoded before (by the broker, or for another subscriber). */
  reused = 0;
  /** Resolves once a probe publish showed that a subscriber gets the very payload the broker decoded; rejects if not. */
  readonly checked: Promise<void>;

  constructor(aedes: Aedes) {
    this.checked = check(aedes, this);
    this.checked.catch(() => undefined); // reported to whoever subscribes (InProcessBus.subscribe awaits it), not as an unhandled rejection
  }

  /** Decodes a publish and keeps the result with its payload for the subscribers. */
  decodePublish(topic: string, payload: Buffer | string): Decoded {
    const decoded = decode(topic, payload);
    this.decodes++;
    if (typeof payload !== 'string') this.remember(topic, payload, decoded);
    return decoded;
  }

  /** Keeps a decoded result with its payload. */
  remember(topic: string, payload: Buffer, decoded: Decoded): void {
    (payload as Carrier)[DECODED] = { topic, decoded };
  }

  /** The decoded message of a delivered packet: the broker's, or decoded now and kept for the next subscriber. */
  of(topic: string, payload: Buffer): Decoded {
    const known = (payload as Carrier)[DECODED];
    if (known && known.topic === topic) {
      this.reused++;
      return known.decoded;
    }
    return this.decodePublish(topic, payload);
  }

  /** Whether a decoded result is kept for this payload (the start-up probe). */
  holds(topic: string, payload: Buffer): boolean {
    return (payload as Carrier)[DECODED]?.topic === topic;
  }
}

const installed = new WeakMap<Aedes, DecodedMessages>();

/** The decoded messages of this broker (one table per Aedes instance, shared by the broker and its InProcessBus). */
export function decodedMessages(aedes: Aedes): DecodedMessages {
  let table = installed.get(aedes);
  if (!table) {
    table = new DecodedMessages(aedes);
    installed.set(aedes, table);
  }
  return table;
}

/**
 * A probe publish on a topic of its own, decoded the way authorizePublish does: the probe
 * subscriber must get the same payload object, with its decoded result found. QoS 0, so that no
 * offline session subscribed to `$SYS/#` gets it queued.
 */
function check(aedes: Aedes, table: DecodedMessages): Promise<void> {
  const topic = `$SYS/linewatch/decode-check/${randomUUID()}`;
  const payload = Buffer.from('{}');
  table.remember(topic, payload, decode(topic, payload));
  return new Promise<void>((resolve, reject) => {
    let found = false;
    const probe = (packet: AedesPublishPacket, done: () => void): void => {
      found = packet.payload === payload && table.holds(packet.topic, packet.payload);
      done();
    };
    aedes.subscribe(topic, probe, () => {
      const packet: PublishPacket = { cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false };
      aedes.publish(packet, (err) => {
        aedes.unsubscribe(topic, probe, () => undefined);
        if (!err && found) resolve();
        else reject(new Error(`aedes internals changed (${err ? `the decode probe publish failed: ${err.message}` : 'a subscriber no longer gets the payload Buffer the broker validated'}): broker/decoded.ts must be revisited for the new version`));
      });
    });
  });
}
