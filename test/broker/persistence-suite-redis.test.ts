// The Redis store (broker/persistence/redis.ts, as the broker opens it) passes the abstract test
// suite aedes-persistence ships for implementations, on a real redis-server (test/harness/redis.ts),
// with mqemitter-redis on the same Redis as the suite broker's emitter (as in a cluster).
import mqemitterRedis from 'mqemitter-redis';
import { afterAll, beforeAll } from 'vitest';
import { brokerConfigSchema } from '../../broker/config.js';
import { openPersistence } from '../../broker/persistence/index.js';
import { openRedisPersistence } from '../../broker/persistence/redis.js';
import { abstractPersistenceSuite } from '../harness/abstract-persistence.js';
import { startTestRedis, type TestRedis } from '../harness/redis.js';

let redis: TestRedis;

beforeAll(async () => {
  redis = await startTestRedis();
});

afterAll(async () => {
  await redis?.stop();
});

interface WithBroker {
  broker: { mq: { close(done: () => void): void } } | undefined;
  destroy(): Promise<void>;
}

/** A store for one case of the suite; its destroy() closes it as the broker does, then the suite broker's emitter. */
async function suiteStore(open: () => Promise<{ persistence: unknown; close(): Promise<void> }>): Promise<WithBroker> {
  await redis.command('FLUSHALL');
  const opened = await open();
  const store = opened.persistence as WithBroker;
  store.destroy = async () => {
    await opened.close();
    await new Promise<void>((resolve) => (store.broker ? store.broker.mq.close(resolve) : resolve()));
  };
  return store;
}

const redisEmitter = { buildEmitter: () => mqemitterRedis({ connectionString: redis.url }) };

abstractPersistenceSuite('redis', () => suiteStore(() => openRedisPersistence({ url: redis.url, dataDir: '' })), redisEmitter);

// And as the broker opens it (broker/persistence/index.ts): with the per-session queue limit around it.
abstractPersistenceSuite(
  'redis with the session queue limit',
  () => suiteStore(() => openPersistence(brokerConfigSchema.parse({ persistence: 'redis', redis: { url: redis.url } }))),
  redisEmitter,
);
