// Child process for bench/cluster.ts: one broker node under test, answering the parent over IPC
// like broker-server.ts does. Its store is memory or Redis; a cluster node also routes every
// message through Redis pub/sub.
//   node dist/bench/cluster-node.js linewatch <memory|redis|cluster> <redisUrl> <devicesFile>
//   node dist/bench/cluster-node.js aedes <redis|cluster> <redisUrl>
// linewatch's node is `linewatch broker` as configured (auth, ACL, validation, safe-mq, the Redis
// store with its adaptations); the bare Aedes 1.2.0 node is the packages as their READMEs wire
// them: aedes-persistence-redis's default export and, for a cluster, mqemitter-redis.
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { Aedes, type AedesOptions } from 'aedes';
import mqemitterRedis from 'mqemitter-redis';
import { brokerConfigSchema, startBroker } from '../broker/index.js';
import { roleGrants } from '../config/services.js';

type Mode = 'memory' | 'redis' | 'cluster';
const [kind, mode, redisUrl, devicesFile] = process.argv.slice(2) as ['linewatch' | 'aedes', Mode, string, string | undefined];
const require = createRequire(import.meta.url);

async function startLinewatch(): Promise<number> {
  const config = brokerConfigSchema.parse({
    port: 0,
    wsPort: null,
    devicesFile,
    maxConnections: 100_000,
    statsIntervalMs: 60_000,
    persistence: mode === 'memory' ? 'memory' : 'redis',
    redis: { url: mode === 'redis' ? redisUrl : null },
    cluster: mode === 'cluster' ? redisUrl : null,
  });
  const broker = await startBroker(config, { roles: roleGrants() });
  return broker.ports.mqtt;
}

async function startBareAedes(): Promise<number> {
  const { hostname, port } = new URL(redisUrl);
  const aedesPersistenceRedis = require('aedes-persistence-redis') as (options: { host: string; port: number }) => AedesOptions['persistence'];
  const options: Partial<AedesOptions> = { persistence: aedesPersistenceRedis({ host: hostname, port: Number(port) }) };
  if (mode === 'cluster') options.mq = mqemitterRedis({ connectionString: redisUrl });
  const aedes = await Aedes.createBroker(options);
  const server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

const port = kind === 'linewatch' ? await startLinewatch() : await startBareAedes();
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
process.send!({ cmd: 'ready', port });
