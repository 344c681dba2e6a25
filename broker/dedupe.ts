// Aedes 1.2.0 silently drops a message to a subscriber when its broker counter is not above the
// last counter it delivered to that subscriber (lib/client.js `dedupe`). That is meant to drop the
// second copy a client with overlapping subscriptions would get, but it also drops every message
// that reaches the subscriber after a newer one — with no error and no counter. Messages are
// numbered in aedes.publish(), yet a QoS 1/2 message reaches the router only after two
// persistence promise hops while a QoS 0 one goes at once: a QoS 1 publish followed, in the same
// turn, by a QoS 0 publish that the same client receives loses the QoS 1 message. So did any
// message the router delivered out of order (4–6 of 15 000 rules-engine commands at 50k events/s,
// before safe-mq.ts kept the order; the engine's retry delivered them ~2 s later).
//
// Here a message is dropped only when it is a copy of one of the last few messages delivered to
// this client: the copies from overlapping subscriptions come in the same synchronous loop over a
// message's listeners, so they are always among the last few. An older message is delivered.
import type { Client } from 'aedes';

/** Delivered messages remembered per client; a missed copy only means an extra copy (MQTT-3.3.5-1 allows it). */
const RECENT = 4;

interface CountedPacket {
  qos?: number;
  brokerId?: string | null;
  brokerCounter: number;
}
type Deliver = (packet: CountedPacket, done: () => void) => void;
interface DeliveringClient {
  duplicates: Record<string, number>;
  deliverQoS: Deliver;
  deliver0: Deliver;
}

/** The last messages delivered to one client, as (broker id, broker counter) pairs. */
interface Recent {
  ids: (string | undefined)[];
  counters: number[];
  next: number;
}

/** Call right after `aedes.handle(stream)`, before the client subscribes. */
export function dropOnlyExactCopies(client: Client): void {
  const c = client as unknown as DeliveringClient;
  if (typeof c.deliverQoS !== 'function' || typeof c.deliver0 !== 'function' || typeof c.duplicates !== 'object') {
    throw new Error('aedes Client internals changed (deliverQoS, deliver0, duplicates): broker/dedupe.ts must be revisited for the new version');
  }
  let recent: Recent | undefined; // allocated at the first delivery: idle connections stay small

  /** Sets Aedes's verdict (it forwards when `duplicates[id] < counter`) to ours, before its check runs. */
  const judge = (packet: CountedPacket): void => {
    const id = packet.brokerId;
    if (!id) return; // retained messages: Aedes never dedupes them
    const counter = packet.brokerCounter;
    recent ??= { ids: new Array<string | undefined>(RECENT).fill(undefined), counters: new Array<number>(RECENT).fill(0), next: 0 };
    let copy = false;
    for (let i = 0; i < RECENT; i++) if (recent.counters[i] === counter && recent.ids[i] === id) copy = true;
    c.duplicates[id] = copy ? counter : counter - 1;
    if (!copy) {
      recent.ids[recent.next] = id;
      recent.counters[recent.next] = counter;
      recent.next = (recent.next + 1) % RECENT;
    }
  };

  const deliverQoS = c.deliverQoS;
  const deliver0 = c.deliver0;
  c.deliverQoS = (packet, done) => {
    if (packet.qos !== 0) judge(packet); // a QoS 0 packet is handed on to deliver0, which judges it
    deliverQoS(packet, done);
  };
  c.deliver0 = (packet, done) => {
    judge(packet);
    deliver0(packet, done);
  };
}
