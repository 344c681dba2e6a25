// Opens the broker's store from `broker.persistence` (docs/broker.md#persistence) and puts the
// per-session queue limit (`broker.sessionQueue`, queue-limit.ts) around it, whichever it is.
import type { LogLimiter } from '../../lib/log-limit.js';
import { logger } from '../../lib/log.js';
import type { BrokerConfig } from '../config.js';
import { redisStoreFor } from '../cluster.js';
import { openDiskPersistence } from './disk.js';
import { createLinearMemoryPersistence } from './memory.js';
import { PacketIds } from '../packet-ids.js';
import { QueueLimit } from './queue-limit.js';
import { openRedisPersistence } from './redis.js';
import type { AedesPersistence, OpenedPersistence } from './types.js';

export { diskStoreDir } from './disk.js';
export type { OpenedPersistence, PersistenceKind } from './types.js';

export interface PersistenceOptions {
  /** The data dir (`dataDir` in linewatch.yaml, `--data-dir`): the disk store lives in `<dataDir>/broker`. */
  readonly dataDir?: string;
  /** Where the queue limit logs a full session (the broker's rate-limited log). */
  readonly limitedLog?: LogLimiter;
}

/** A store with the session queue limit and the packet id tracking around it. */
export interface OpenedStore extends OpenedPersistence {
  readonly queueLimit: QueueLimit;
  /** Free packet ids for persistent sessions (packet-ids.ts): call prepare() for each authenticated client. */
  readonly packetIds: PacketIds;
}

export async function openPersistence(config: Pick<BrokerConfig, 'persistence' | 'sessionQueue' | 'redis' | 'cluster'>, options: PersistenceOptions = {}): Promise<OpenedStore> {
  const store = await openStore(config, options);
  const queueLimit = new QueueLimit(config.sessionQueue, options.limitedLog);
  // In a cluster another node may have changed a session's queue since this one saw it: read it at every connect.
  const packetIds = new PacketIds({ rereadOnConnect: config.cluster !== null, limitedLog: options.limitedLog });
  if (config.cluster) {
    // The limit counts in this process, but in a cluster a message is queued on the node it was
    // published on and removed (its PUBACK) on the subscriber's: a count kept here would only
    // grow on the publishing node, which would then drop messages for healthy subscribers.
    logger('broker').warn(
      { maxMessages: config.sessionQueue.maxMessages },
      "broker.sessionQueue is not enforced in a cluster (broker.cluster): a message is queued on the node it was published on and acknowledged on the subscriber's, so no node can count a session's queue; queued messages are bounded only by the Redis server's memory (docs/broker.md#session-queue-limit)",
    );
    return { ...store, persistence: packetIds.wrap(store.persistence), queueLimit, packetIds };
  }
  return {
    ...store,
    persistence: packetIds.wrap(queueLimit.wrap(store.persistence)),
    queueLimit,
    packetIds,
    gauges: () => ({ ...store.gauges(), session_queue_messages: queueLimit.queued(), session_queues_full: queueLimit.fullSessions().length }),
    close: () => store.close(),
  };
}

async function openStore(config: Pick<BrokerConfig, 'persistence' | 'redis' | 'cluster'>, options: PersistenceOptions): Promise<OpenedPersistence> {
  // A cluster keeps its sessions on the cluster's Redis, whatever broker.persistence says (cluster.ts).
  const redis = redisStoreFor(config, options.dataDir);
  if (redis) return openRedisPersistence(redis);
  switch (config.persistence) {
    case 'redis':
      throw new Error('broker.persistence is redis but no Redis store was chosen (broker/cluster.ts redisStoreFor); this is a bug');
    case 'memory':
      return openMemoryPersistence();
    case 'disk':
      if (options.dataDir === undefined) {
        throw new Error('broker.persistence is disk but the broker was given no data dir: pass dataDir (linewatch.yaml dataDir, --data-dir), or set broker.persistence: memory');
      }
      return openDiskPersistence(options.dataDir);
  }
}

function openMemoryPersistence(): OpenedPersistence {
  const persistence: AedesPersistence & { destroy(): Promise<void> } = createLinearMemoryPersistence();
  let closing: Promise<void> | undefined;
  return {
    kind: 'memory',
    persistence,
    location: 'memory',
    gauges: () => ({}),
    close: () => (closing ??= persistence.destroy()),
  };
}
