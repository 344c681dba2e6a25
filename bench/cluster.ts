// Cluster benchmark (issue 13): what Redis costs. bench/broker-load.ts's 100 devices publish QoS 1,
// 64-byte telemetry at fixed offered rates, and its TCP subscriber (a persistent session, as the
// historian's, so that each message goes through the store; or a clean one, where only the
// router is on the path) counts what arrives, against:
// linewatch with the memory store (this run's baseline), linewatch with the Redis store on one
// node, a 2-node linewatch cluster (publishers on A, the subscriber on B), and bare Aedes 1.2.0
// with aedes-persistence-redis, on one node and as two nodes with mqemitter-redis, as the
// references. One redis-server (Debian's, configured as the managed one: AOF, appendfsync
// everysec) serves every system, flushed before each rate point. Nodes, load generator, redis-server and
// this orchestrator are separate processes: CPU is counted for the broker nodes together and for
// redis-server, per message delivered.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { findRedisServer, startManagedRedis, type ManagedRedis } from '../broker/redis-server.js';
import { withTimeout } from '../lib/wait.js';
import { DEVICES, TICKS_PER_SECOND, ask, deliveryCells, drained, procStat, ready, stopChild, addBenchAccounts } from './broker.js';
import type { ReceiverResult } from './broker-receiver.js';
import type { Report } from './report.js';

// A persistent subscriber on the Redis store takes a few thousand messages a second at most.
const RATES = [1_000, 2_500, 5_000];
const SECONDS = 3;
const NODE = fileURLToPath(new URL('./cluster-node.js', import.meta.url));
const LOAD = fileURLToPath(new URL('./broker-load.js', import.meta.url));

interface System {
  name: string;
  kind: 'linewatch' | 'aedes';
  mode: 'memory' | 'redis' | 'cluster';
  /** Two: the publishers connect to the first node, the subscriber to the second. */
  nodes: 1 | 2;
  /** The subscriber's session: persistent (clean=false, as the historian's: every delivery goes through the store) or clean (only the router is measured). */
  subscriber: 'persistent' | 'clean';
}

const SYSTEMS: System[] = [
  { name: 'linewatch, memory store, one node', kind: 'linewatch', mode: 'memory', nodes: 1, subscriber: 'persistent' },
  { name: 'linewatch, Redis store, one node', kind: 'linewatch', mode: 'redis', nodes: 1, subscriber: 'persistent' },
  { name: 'bare Aedes 1.2.0 + aedes-persistence-redis 12, one node', kind: 'aedes', mode: 'redis', nodes: 1, subscriber: 'persistent' },
  { name: 'linewatch cluster, 2 nodes (publishers on A, subscriber on B)', kind: 'linewatch', mode: 'cluster', nodes: 2, subscriber: 'persistent' },
  { name: 'bare Aedes 1.2.0 + mqemitter-redis 7 + aedes-persistence-redis 12, 2 nodes', kind: 'aedes', mode: 'cluster', nodes: 2, subscriber: 'persistent' },
  { name: 'linewatch cluster, 2 nodes, clean subscriber', kind: 'linewatch', mode: 'cluster', nodes: 2, subscriber: 'clean' },
  { name: 'bare Aedes 1.2.0 + mqemitter-redis 7 + aedes-persistence-redis 12, 2 nodes, clean subscriber', kind: 'aedes', mode: 'cluster', nodes: 2, subscriber: 'clean' },
];

interface Node {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

async function startNode(system: System, redisUrl: string, devicesFile: string): Promise<Node> {
  const args = system.kind === 'linewatch' ? ['linewatch', system.mode, redisUrl, devicesFile] : ['aedes', system.mode, redisUrl];
  const child = fork(NODE, args, { env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await ready<{ port: number }>(child, `a node of ${system.name}`);
  return { pid: child.pid!, port, stop: () => stopChild(child) };
}

async function flush(redisUrl: string): Promise<void> {
  const connection = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await withTimeout(connection.connect(), 5_000, `the bench's redis-server at ${redisUrl}`);
    await connection.flushall();
  } finally {
    connection.disconnect();
  }
}

const cpuSeconds = (ticks: number): number => ticks / TICKS_PER_SECOND;
const ticksOf = (pids: number[]): number => pids.reduce((sum, pid) => sum + procStat(pid).cpuTicks, 0);

/** One rate point on fresh nodes and an empty Redis: what a saturated point left queued does not spill into the next. */
async function ratePoint(system: System, rate: number, redis: ManagedRedis, devicesFile: string): Promise<(string | number)[]> {
  await flush(redis.url);
  const nodes: Node[] = [];
  try {
    for (let index = 0; index < system.nodes; index++) nodes.push(await startNode(system, redis.url, devicesFile));
    const load = fork(LOAD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    try {
      await ready(load, 'the load generator');
      const connected = await ask<{ error?: string }>(load, { cmd: 'connect', port: nodes[0]!.port, devices: DEVICES, subscriber: true, subscriberPort: nodes.at(-1)!.port, persistentSubscriber: system.subscriber === 'persistent' }, 60_000);
      if (connected.error) throw new Error(`${system.name}: ${connected.error}`);
      const receiver = async (): Promise<ReceiverResult> => (await ask<{ result: ReceiverResult }>(load, { cmd: 'receiver' })).result;
      const brokerPids = nodes.map((node) => node.pid);
      const brokerBefore = ticksOf(brokerPids);
      const redisBefore = ticksOf([redis.pid]);
      const started = Date.now();
      const { sent, heldBack } = await ask<{ sent: number; heldBack: number }>(load, { cmd: 'point', rate, seconds: SECONDS });
      const elapsed = (Date.now() - started) / 1000;
      const brokerCpu = cpuSeconds(ticksOf(brokerPids) - brokerBefore);
      const redisCpu = cpuSeconds(ticksOf([redis.pid]) - redisBefore);
      const inWindow = await receiver();
      const last = await drained(receiver, sent, inWindow);
      // Per message: the CPU from the start of the window to the end of the drain, over every message delivered by then.
      const brokerTotal = cpuSeconds(ticksOf(brokerPids) - brokerBefore);
      const redisTotal = cpuSeconds(ticksOf([redis.pid]) - redisBefore);
      const perMessage = (seconds: number): string => (last.unique > 0 ? ((seconds / last.unique) * 1e6).toFixed(0) : '—');
      console.log(`  ${system.name} @ ${rate}/s: sent ${sent}, delivered in window ${inWindow.unique}, missing ${sent - last.unique}, p99 ${last.p99Ms} ms, broker ${perMessage(brokerTotal)} µs/msg, redis ${perMessage(redisTotal)} µs/msg`);
      return [
        ...deliveryCells(system.name, rate, { sent, heldBack, elapsed, inWindow, last }),
        `${((brokerCpu / elapsed) * 100).toFixed(0)}%`,
        perMessage(brokerTotal),
        `${((redisCpu / elapsed) * 100).toFixed(0)}%`,
        perMessage(redisTotal),
      ];
    } finally {
      await ask(load, { cmd: 'close' }).catch(() => undefined);
      await stopChild(load);
    }
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
  }
}

export async function run(report: Report): Promise<void> {
  if (!findRedisServer()) {
    console.log('  redis-server not found: skipping the cluster benchmark (apt-get install redis-server)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-bench-cluster-'));
  const redis = await startManagedRedis({ dir: join(dir, 'redis') });
  try {
    const devicesFile = join(dir, 'devices.json');
    await addBenchAccounts(devicesFile);
    // LINEWATCH_BENCH_CLUSTER=substring runs only the matching systems (for quick iterations).
    const only = process.env.LINEWATCH_BENCH_CLUSTER;
    const rows: (string | number)[][] = [];
    for (const system of SYSTEMS.filter((candidate) => !only || candidate.name.includes(only))) {
      for (const rate of RATES) rows.push(await ratePoint(system, rate, redis, devicesFile));
    }
    report.add({
      title: 'Broker on Redis: 100 devices publishing QoS 1, 64-byte telemetry, one node and a 2-node cluster',
      note:
        `Each rate point offers the load for ${SECONDS} s from a separate load-generator process (bench/broker-load.ts: raw MQTT, one connection per device, ` +
        'a device skips its turn while its socket buffer is full: "held back"), each on fresh nodes and an emptied Redis; one TCP subscriber (QoS 1) counts at the receiver, on node B for the 2-node rows: ' +
        'a persistent session like the historian\'s (each message is queued in the store for it and cleared on its PUBACK) unless the row says clean (then only the router, Redis pub/sub for a cluster, is on the path). ' +
        'Delivered/s counts unique messages received within the window; missing = sent − unique received after the drain; latency is receiver clock − device timestamp (ms). ' +
        'Broker CPU is every node together (100% = one core), redis-server CPU is the one Redis all of them share (AOF, appendfsync everysec), both over the window; µs/msg is the CPU from the start of the window to the end of the drain divided by the unique messages delivered by then. ' +
        'Bare Aedes wires the packages as their READMEs do (no auth, no ACL, no payload validation).',
      columns: ['system', 'offered/s', 'sent/s', 'held back', 'delivered/s', 'missing', 'duplicates', 'p50 ms', 'p99 ms', 'broker CPU', 'broker µs/msg', 'redis CPU', 'redis µs/msg'],
      rows,
    });
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
