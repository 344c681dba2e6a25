// Several brokers as one (`broker.cluster: redis://HOST:PORT`, docs/broker.md#cluster): the
// message router Aedes is given becomes mqemitter-redis on that Redis — every publish goes to
// Redis pub/sub and comes back to every node that has a matching subscriber, the publishing node
// included — and the store becomes the Redis store on the same Redis (sessions, retained
// messages, queued QoS 1/2 messages, wills). Aedes does the rest across nodes through the router:
// `$SYS/<id>/heartbeat` (which nodes are alive, so a dead node's wills are published by another:
// `streamWill(brokers)`), `$SYS/<id>/new/clients` (a client connecting to one node closes its old
// connection on another), and the store's subscription broadcasts.
import mqemitterRedis from 'mqemitter-redis';
import { logger } from '../lib/log.js';
import { waitFor } from '../lib/wait.js';
import type { BrokerConfig } from './config.js';
import { checkRedisUrl, type RedisStoreOptions } from './persistence/redis.js';
import { guardMq, type SafeMq } from './safe-mq.js';

const log = logger('broker');

/** How long the router's two connections to the cluster's Redis may take at start. */
const CONNECT_TIMEOUT_MS = 10_000;

/** mqemitter-redis's own connections: `close()` quits them, its `state` emitter reports their errors. */
interface RedisRouterConnections {
  subConn: { status: string; disconnect(): void };
  pubConn: { status: string; disconnect(): void };
  state: NodeJS.EventEmitter;
}

/**
 * mqemitter-redis on the cluster's Redis with safe-mq.ts's fixes on its local delivery (which is
 * mqemitter's: its guard fails loudly if not), once both of its connections are ready (bounded).
 */
export async function createClusterMq(url: string, concurrency: number): Promise<SafeMq> {
  checkRedisUrl(url, 'broker.cluster');
  const router = mqemitterRedis({ connectionString: url, concurrency, matchEmptyLevels: true });
  const connections = router as unknown as RedisRouterConnections;
  // Without a listener an 'error' on `state` would throw; ioredis reconnects by itself.
  let lastLogged = 0;
  let lastError: Error | undefined;
  connections.state.on('error', (err: Error) => {
    lastError = err;
    if (Date.now() - lastLogged < 10_000) return;
    lastLogged = Date.now();
    log.warn({ url, err: err.message }, 'the cluster\'s Redis connection failed; ioredis reconnects, deliveries across nodes wait meanwhile');
  });
  try {
    await waitFor(() => connections.subConn.status === 'ready' && connections.pubConn.status === 'ready', CONNECT_TIMEOUT_MS, `the cluster's Redis at ${url}`, 20);
  } catch (err) {
    connections.subConn.disconnect();
    connections.pubConn.disconnect();
    throw Object.assign(new Error(`could not reach the cluster's Redis at ${url} (broker.cluster): ${lastError?.message ?? (err as Error).message}; start it, or fix broker.cluster`), { userFacing: true });
  }
  return guardMq(router, 'mqemitter-redis');
}

/**
 * Where the Redis store is, or undefined when the broker uses no Redis store: a cluster keeps its
 * sessions on the cluster's Redis (a different `broker.redis.url` is refused: the nodes must
 * share one store), `persistence: redis` on `broker.redis.url` (null: a managed redis-server).
 */
export function redisStoreFor(config: Pick<BrokerConfig, 'persistence' | 'redis' | 'cluster'>, dataDir: string | undefined): RedisStoreOptions | undefined {
  if (config.cluster !== null) {
    if (config.redis.url !== null && config.redis.url !== config.cluster) {
      throw Object.assign(new Error(`broker.redis.url (${config.redis.url}) differs from broker.cluster (${config.cluster}): the nodes of a cluster keep their sessions on the cluster's Redis; remove broker.redis.url or set it to the same URL`), { userFacing: true });
    }
    return { url: config.cluster, dataDir: dataDir ?? '', urlKey: 'broker.cluster' };
  }
  if (config.persistence !== 'redis') return undefined;
  if (config.redis.url === null && dataDir === undefined) {
    throw new Error('broker.persistence: redis without broker.redis.url runs a managed redis-server under the data dir, and none was given (BrokerOptions.dataDir)');
  }
  return { url: config.redis.url, dataDir: dataDir ?? '', urlKey: 'broker.redis.url' };
}
