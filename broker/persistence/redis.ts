// The Redis store (`broker.persistence: redis`): aedes-persistence-redis 12 (its async class,
// which Aedes 1.2.0 calls) on `broker.redis.url`, or — when that is null — on a managed
// redis-server under `<dataDir>/redis` (broker/redis-server.ts), locked so that two brokers
// cannot share it. A cluster (`broker.cluster`) uses this store on the cluster's Redis.
//
// Its key schema (aedes-persistence-redis 12, one Redis database): `retained` (a hash topic →
// packet), `clients` (a set of client ids with subscriptions), `client:<id>` (a hash filter →
// subscription), `outgoing:<id>` (a list of packet keys queued for a client), `packet:<broker>:<n>`
// and `…:offlineCount` (a queued packet and how many queues still hold it),
// `outgoing:<id>:<broker>:<n>` (QoS 2 PUBREL state), `incoming:<id>` (a hash of QoS 2 packets
// received, awaiting PUBREL), `will` (a list) and `will:<broker>:<id>`.
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import { lockDir, unlockDir } from '../../lib/dir-lock.js';
import { logger } from '../../lib/log.js';
import { withTimeout } from '../../lib/wait.js';
import { startManagedRedis, type ManagedRedis } from '../redis-server.js';
import { oneWillPerClient } from './redis-wills.js';
import type { AedesPersistence, OpenedPersistence } from './types.js';

const log = logger('broker');
const require = createRequire(import.meta.url);

/**
 * Queued messages handed to a reconnecting client at once. aedes-persistence-redis delivers only
 * the first `maxSessionDelivery` (default 1000) of a session's queue on CONNECT and the rest only
 * at a later reconnect; the whole queue is what linewatch promises (the session queue limit,
 * `broker.sessionQueue`, bounds it).
 */
const WHOLE_QUEUE = 1_000_000_000;

/** How long the connection to Redis may take at start, and the store's close. */
const CONNECT_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 10_000;

interface AsyncRedisPersistence {
  setup(broker: unknown): Promise<void>;
  destroy(): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): AsyncIterable<unknown>;
  createRetainedStream(pattern: string): AsyncIterable<unknown>;
  outgoingStream(client: unknown): AsyncIterable<unknown>;
  delWill(client: { id: string; brokerId?: string }): Promise<unknown>;
}
type AsyncRedisPersistenceClass = new (options: { conn: Redis; maxSessionDelivery: number }) => AsyncRedisPersistence;

export interface RedisStoreOptions {
  /** `broker.redis.url` (or the cluster's URL); null: a managed redis-server under `<dataDir>/redis`. */
  url: string | null;
  /** linewatch's data dir (`dataDir`). */
  dataDir: string;
  /** The config key the URL came from, for errors. */
  urlKey?: string;
}

/** Where a managed redis-server keeps its config, AOF and log under linewatch's data dir. */
export function managedRedisDir(dataDir: string): string {
  return join(dataDir, 'redis');
}

/** Opens the Redis store: connects (starting a managed redis-server first when no URL is given) and returns it for Aedes. */
export async function openRedisPersistence(options: RedisStoreOptions): Promise<OpenedPersistence> {
  const urlKey = options.urlKey ?? 'broker.redis.url';
  let managed: ManagedRedis | undefined;
  let lockedDir: string | undefined;
  let url = options.url;
  if (url === null) {
    lockedDir = managedRedisDir(options.dataDir);
    mkdirSync(lockedDir, { recursive: true });
    lockDir(lockedDir, 'the broker\'s managed Redis directory', `another linewatch broker uses ${options.dataDir}; give this one its own --data-dir, or set ${urlKey} to a shared Redis`);
    try {
      managed = await startManagedRedis({ dir: lockedDir });
    } catch (err) {
      unlockDir(lockedDir);
      throw err;
    }
    url = managed.url;
  }
  const releaseManaged = async (): Promise<void> => {
    await managed?.stop();
    if (lockedDir) unlockDir(lockedDir);
  };
  let connection: Redis;
  try {
    connection = await connectRedis(url, urlKey);
  } catch (err) {
    await releaseManaged();
    throw err;
  }
  const Store = require('aedes-persistence-redis/asyncPersistence.js') as AsyncRedisPersistenceClass;
  const store = new Store({ conn: connection, maxSessionDelivery: WHOLE_QUEUE });
  const destroy = store.destroy.bind(store);
  try {
    asReadableStreams(store);
    oneWillPerClient(store, connection);
  } catch (err) {
    connection.disconnect();
    await releaseManaged();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    kind: 'redis',
    persistence: store as AedesPersistence,
    location: managed ? `${url} (managed redis-server in ${lockedDir})` : url,
    gauges: () => ({ persistence_redis_connected: connection.status === 'ready' ? 1 : 0 }),
    close: () => {
      closing ??= (async () => {
        try {
          await withTimeout(destroyStore(destroy, connection), CLOSE_TIMEOUT_MS, `the Redis store at ${url} to close`);
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'the Redis store did not close cleanly; its connection is dropped');
          connection.disconnect();
        }
        await releaseManaged();
      })();
      return closing;
    },
  };
}

/** A connection that is ready (bounded), or an error naming the config key and the URL. */
export async function connectRedis(url: string, urlKey: string): Promise<Redis> {
  checkRedisUrl(url, urlKey);
  // Commands wait while the connection is re-established (ioredis's offline queue), so a Redis
  // restart stalls publishes instead of failing them; the first connect is bounded.
  const connection = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: null });
  let lastError: Error | undefined;
  const onError = (err: Error): void => {
    lastError = err;
  };
  connection.on('error', onError);
  try {
    await withTimeout(connection.connect(), CONNECT_TIMEOUT_MS, `Redis at ${url}`);
  } catch (err) {
    connection.disconnect();
    const why = lastError?.message ?? (err as Error).message;
    throw Object.assign(new Error(`could not reach Redis at ${url} (${urlKey}): ${why}; start it, or fix ${urlKey}`), { userFacing: true });
  }
  connection.off('error', onError);
  // Later errors (Redis restarting) are retried by ioredis; log them at a bounded rate.
  let lastLogged = 0;
  connection.on('error', (err: Error) => {
    if (Date.now() - lastLogged < 10_000) return;
    lastLogged = Date.now();
    log.warn({ url, err: err.message }, 'the connection to Redis failed; ioredis reconnects, publishes wait meanwhile');
  });
  return connection;
}

async function destroyStore(destroy: () => Promise<void>, connection: Redis): Promise<void> {
  if (connection.status === 'end') return;
  await destroy();
}

/** Refuses anything but a redis:// (or rediss://) URL, naming the config key. */
export function checkRedisUrl(url: string, key: string): void {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw Object.assign(new Error(`${key}: "${url}" is not a URL; write it as redis://HOST:PORT`), { userFacing: true });
  }
  if (protocol !== 'redis:' && protocol !== 'rediss:') {
    throw Object.assign(new Error(`${key}: "${url}" is not a redis:// URL; write it as redis://HOST:PORT`), { userFacing: true });
  }
}

/**
 * aedes-persistence-redis 12's async class returns async generators where Aedes 1.2.0 expects
 * streams: it pipes `createRetainedStreamCombi` (lib/handlers/subscribe.js, `stream.pipe`: a
 * subscribe that matches a retained message would throw) and the abstract suite reads
 * `outgoingStream`'s `readableHighWaterMark`. aedes-persistence's own async store returns
 * `Readable.from(…)`; so do these, on this instance.
 */
function asReadableStreams(store: AsyncRedisPersistence): void {
  for (const name of ['createRetainedStreamCombi', 'outgoingStream'] as const) {
    if (typeof store[name] !== 'function') throw new Error(`aedes-persistence-redis changed (${name} is not a method): broker/persistence/redis.ts must be revisited for the new version`);
  }
  const retainedCombi = store.createRetainedStreamCombi.bind(store);
  const outgoing = store.outgoingStream.bind(store);
  store.createRetainedStreamCombi = (patterns) => Readable.from(retainedCombi(patterns));
  store.createRetainedStream = (pattern) => Readable.from(retainedCombi([pattern]));
  store.outgoingStream = (client) => Readable.from(outgoing(client));
}
