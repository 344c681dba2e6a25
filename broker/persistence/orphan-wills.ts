// The wills a dead broker left in its store: a client connected when the broker was killed
// (SIGKILL, a crash, a power loss) never disconnected cleanly, so MQTT owes its will. Aedes
// publishes wills of brokers it has not heard from (`_clearWills` in aedes.js) only every
// 4 × heartbeatInterval (`broker.heartbeatMs`: ~20 s at the default 5 s) after start. A store only one broker uses (disk, locked
// to this process; memory) holds no will of a live broker but this one, so at start, before any
// client can connect, every will in it is one of a previous run: it is published now and deleted,
// as Aedes would (docs/broker.md#persistence). Not for a store shared by a cluster (redis): there,
// even on one node, Aedes's own check publishes a killed run's wills (docs/broker.md#redis).
import type { PublishPacket } from 'aedes';
import type { AedesPublish } from '../drop-refused.js';

interface WillRecord {
  clientId: string;
  brokerId: string;
  topic: string;
  payload: Buffer | Uint8Array | string;
  qos?: 0 | 1 | 2;
  retain?: boolean;
}

/** What of the persistence interface this uses (aedes-persistence's async API). */
interface WillStore {
  streamWill(brokers: Record<string, number>): AsyncIterable<WillRecord>;
  delWill(client: { id: string; brokerId: string }): Promise<unknown>;
}

/** Publishes (through Aedes's own publish) and deletes every will not of `brokerId`; resolves with how many. */
export async function publishOrphanWills(store: unknown, brokerId: string, publish: AedesPublish): Promise<number> {
  const wills = store as WillStore;
  let published = 0;
  // streamWill(brokers) yields the wills of every broker id not listed: all but ours.
  for await (const will of wills.streamWill({ [brokerId]: Date.now() })) {
    const packet: PublishPacket = { cmd: 'publish', topic: will.topic, payload: Buffer.from(will.payload), qos: will.qos ?? 0, retain: will.retain ?? false, dup: false };
    await new Promise<void>((resolve, reject) => publish(packet, null, (err) => (err ? reject(err) : resolve())));
    await wills.delWill({ id: will.clientId, brokerId: will.brokerId });
    published++;
  }
  return published;
}
