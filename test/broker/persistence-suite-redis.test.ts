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

abstractPersistenceSuite(
  'redis',
  async () => {
    await redis.command('FLUSHALL');
    const opened = await openRedisPersistence({ url: redis.url, dataDir: '' });
    const store = opened.persistence as WithBroker;
    // The suite destroys each instance at the end of its test: close the store as the broker does, then the suite's emitter.
    store.destroy = async () => {
      await opened.close();
      await new Promise<void>((resolve) => (store.broker ? store.broker.mq.close(resolve) : resolve()));
    };
    return store;
  },
  { buildEmitter: () => mqemitterRedis({ connectionString: redis.url }) },
);

// And as the broker opens it (broker/persistence/index.ts): with the per-session queue limit around it.
abstractPersistenceSuite(
  'redis with the session queue limit',
  async () => {
    await redis.command('FLUSHALL');
    const opened = await openPersistence(brokerConfigSchema.parse({ persistence: 'redis', redis: { url: redis.url } }));
    const store = opened.persistence as WithBroker;
    store.destroy = async () => {
      await opened.close();
      await new Promise<void>((resolve) => (store.broker ? store.broker.mq.close(resolve) : resolve()));
    };
    return store;
  },
  { buildEmitter: () => mqemitterRedis({ connectionString: redis.url }) },
);
