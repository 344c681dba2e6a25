// Broker benchmark (issue 2): 100 device clients publish QoS 1, 64-byte telemetry at fixed
// offered rates; a consumer counts what it receives — a TCP subscriber, or an in-process Bus
// subscriber in the broker's own process. The same load runs against bare Aedes and Debian's
// Mosquitto as references. Broker, load generator (with the TCP subscriber) and this
// orchestrator are separate processes, so the broker's CPU and RSS are its own.
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addAccounts } from '../broker/accounts.js';
import { sleep, withTimeout } from '../lib/wait.js';
import { BENCH_PASSWORD, deviceName, type ReceiverResult } from './broker-receiver.js';
import type { Report } from './report.js';

export const DEVICES = 100;
// 160k is 2× the 80k target: it shows what each broker does when overloaded.
const RATES = [10_000, 20_000, 40_000, 80_000, 160_000];
const SECONDS = 3;
const DRAIN_MS = 3000;
/**
 * Before its first measured point each broker takes this many seconds of the same load at the
 * lowest rate, not counted: a Node broker's first seconds run code V8 has not optimized yet
 * (linewatch's p99 at 10k/s was 115 ms cold and 6 ms on the next, warm point; bare Aedes 99 and
 * 3 ms; Mosquitto 3 and 3). Every system gets the same warm-up; a broker in a plant runs warm.
 */
const WARMUP_SECONDS = 2;
const IDLE_WARMUP = 500; // first connections grow the V8 heap and pools; measure the marginal cost after them
const IDLE_CONNECTIONS = 1500;
const SERVER = fileURLToPath(new URL('./broker-server.js', import.meta.url));
const LOAD = fileURLToPath(new URL('./broker-load.js', import.meta.url));

interface BrokerUnderTest {
  pid: number;
  port: number;
  /** The in-process consumer's counts (linewatch in-process runs only). */
  receiver?: () => Promise<ReceiverResult>;
  reset?: () => void;
  /** Reads refused by linewatch's backpressure so far (linewatch only). */
  pauses?: () => Promise<number | undefined>;
  /** Collects garbage and returns the V8 heap in use (Node brokers only). */
  gc: () => Promise<number | undefined>;
  /** CPU time the broker process used so far, user + system, µs (process.cpuUsage in a Node broker, /proc/PID/stat otherwise). */
  cpuMicros: () => Promise<number>;
  stop(): Promise<void>;
}

/** Sends `msg` to a child and resolves with its first reply carrying the same `cmd`. */
export function ask<T>(child: ChildProcess, msg: { cmd: string } & Record<string, unknown>, ms = 30_000): Promise<T> {
  return withTimeout(
    new Promise<T>((resolve) => {
      const onMessage = (reply: { cmd: string }): void => {
        if (reply.cmd !== msg.cmd) return;
        child.off('message', onMessage);
        resolve(reply as T);
      };
      child.on('message', onMessage);
      child.send(msg);
    }),
    ms,
    `the ${msg.cmd} reply of a bench child`,
  );
}

export function ready<T>(child: ChildProcess, what: string): Promise<T> {
  return withTimeout(
    new Promise<T>((resolve, reject) => {
      child.once('message', (m) => resolve(m as T));
      child.once('exit', (code) => reject(new Error(`${what} exited with ${code}`)));
    }),
    30_000,
    what,
  );
}

export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  return exited.finally(() => clearTimeout(timer));
}

/**
 * LINEWATCH_BENCH_CPU_PROF=<dir>: each Node broker writes a V8 CPU profile there when it stops
 * (`node --cpu-prof`); `node dist/bench/profile-summary.js <file>` ranks it by stage.
 */
function profileArgs(): string[] {
  const dir = process.env.LINEWATCH_BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

export async function startNodeBroker(args: string[]): Promise<BrokerUnderTest> {
  const child = fork(SERVER, args, { execArgv: ['--expose-gc', ...profileArgs()], env: { ...process.env, LINEWATCH_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await ready<{ port: number }>(child, `the ${args[0]} broker`);
  return {
    pid: child.pid!,
    port,
    receiver: args[2] === 'inproc' ? async () => (await ask<{ result: ReceiverResult }>(child, { cmd: 'receiver' })).result : undefined,
    reset: () => child.send({ cmd: 'reset' }),
    pauses: async () => (await ask<{ pauses?: number }>(child, { cmd: 'pauses' })).pauses,
    gc: async () => (await ask<{ heapUsed: number }>(child, { cmd: 'gc' })).heapUsed,
    cpuMicros: async () => {
      const { usage } = await ask<{ usage: NodeJS.CpuUsage }>(child, { cmd: 'cpu' });
      return usage.user + usage.system;
    },
    stop: () => stopChild(child),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export function mosquittoVersion(): string | undefined {
  try {
    const out = execFileSync('mosquitto', ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return /mosquitto version (\S+)/.exec(out)?.[1];
  } catch (err) {
    // `mosquitto -h` exits with 3 after printing its help
    const out = String((err as { stdout?: string }).stdout ?? '');
    return /mosquitto version (\S+)/.exec(out)?.[1];
  }
}

async function startMosquitto(dir: string): Promise<BrokerUnderTest> {
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  // Unlimited queue so Mosquitto does not drop QoS 1 messages for a busy subscriber (its default is 1000).
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\npersistence false\nlog_type error\n`);
  const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(true)); // the port is taken: mosquitto listens
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
    });
    if (up) break;
    if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}`);
    await sleep(50);
  }
  const pid = child.pid!;
  return { pid, port, gc: () => Promise.resolve(undefined), cpuMicros: () => Promise.resolve((procStat(pid).cpuTicks / TICKS_PER_SECOND) * 1e6), stop: () => stopChild(child) };
}

export function procStat(pid: number): { cpuTicks: number; rssBytes: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuTicks: Number(fields[11]) + Number(fields[12]), rssBytes: rssKb * 1024 };
}

export const TICKS_PER_SECOND = 100;

export interface System {
  name: string;
  label: string; // the broker alone, for the idle-connection table
  start(dir: string): Promise<BrokerUnderTest>;
  tcpSubscriber: boolean;
  /** The TCP subscriber connects with clean session off (its messages go through the broker's store). */
  persistentSubscriber?: boolean;
}

/** The accounts the load generator uses: DEVICES devices and the subscriber. */
export async function addBenchAccounts(devicesFile: string): Promise<void> {
  await addAccounts(devicesFile, [
    ...Array.from({ length: DEVICES }, (_, i) => ({ username: deviceName(i), password: BENCH_PASSWORD, role: 'device' as const })),
    { username: 'bench-sub', password: BENCH_PASSWORD, role: 'rules' as const },
  ]);
}

/** Offers each rate for `seconds` and returns one row per rate (the columns of the broker load table). */
export async function loadRun(system: System, dir: string, rates = RATES, seconds = SECONDS): Promise<(string | number)[][]> {
  const broker = await system.start(dir);
  const load = fork(LOAD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const rows: (string | number)[][] = [];
  try {
    await ready(load, 'the load generator');
    const connected = await ask<{ error?: string }>(load, { cmd: 'connect', port: broker.port, devices: DEVICES, subscriber: system.tcpSubscriber, persistentSubscriber: system.persistentSubscriber ?? false }, 60_000);
    if (connected.error) throw new Error(`${system.name}: ${connected.error}`);
    const receiver = async (): Promise<ReceiverResult> =>
      broker.receiver ? broker.receiver() : (await ask<{ result: ReceiverResult }>(load, { cmd: 'receiver' })).result;
    if (rates.length > 0) {
      broker.reset?.();
      load.send({ cmd: 'reset' });
      const warm = await ask<{ sent: number }>(load, { cmd: 'point', rate: Math.min(...rates), seconds: WARMUP_SECONDS }, 60_000);
      await drained(receiver, warm.sent, await receiver());
    }
    for (const rate of rates) {
      broker.reset?.();
      load.send({ cmd: 'reset' });
      const pausesBefore = await broker.pauses?.();
      const cpuBefore = await broker.cpuMicros();
      const before = procStat(broker.pid);
      const loadBefore = procStat(load.pid!);
      const started = Date.now();
      const { sent, heldBack } = await ask<{ sent: number; heldBack: number }>(load, { cmd: 'point', rate, seconds });
      const elapsed = (Date.now() - started) / 1000;
      const after = procStat(broker.pid);
      const loadAfter = procStat(load.pid!);
      const inWindow = await receiver();
      const pausesAfter = await broker.pauses?.();
      const refusedReads = pausesBefore === undefined || pausesAfter === undefined ? '—' : pausesAfter - pausesBefore;
      const last = await drained(receiver, sent, inWindow);
      const perMessage = cpuPerMessage((await broker.cpuMicros()) - cpuBefore, last.unique);
      const cpu = ((after.cpuTicks - before.cpuTicks) / TICKS_PER_SECOND / elapsed) * 100;
      const loadCpu = ((loadAfter.cpuTicks - loadBefore.cpuTicks) / TICKS_PER_SECOND / elapsed) * 100;
      rows.push([
        ...deliveryCells(system.name, rate, { sent, heldBack, elapsed, inWindow, last }),
        `${cpu.toFixed(0)}%`,
        (after.rssBytes / 2 ** 20).toFixed(0),
        `${loadCpu.toFixed(0)}%`,
        refusedReads,
        perMessage,
      ]);
      console.log(`  ${system.name} @ ${rate}/s: sent ${sent}, delivered in window ${inWindow.unique}, missing ${sent - last.unique}, p99 ${last.p99Ms} ms, cpu ${cpu.toFixed(0)}%, ${perMessage} µs/msg`);
    }
  } finally {
    await ask(load, { cmd: 'close' }).catch(() => undefined);
    await stopChild(load);
    await broker.stop();
  }
  return rows;
}

/** The broker's CPU per delivered message, µs with one decimal ('—' when nothing was delivered). */
export function cpuPerMessage(cpuMicros: number, delivered: number): string {
  return delivered > 0 ? (cpuMicros / delivered).toFixed(1) : '—';
}

/** The column loadRun puts the broker's µs per delivered message in (its last). */
export const PER_MESSAGE_COLUMN = 13;

/**
 * Each row with one more cell: its µs per delivered message over Mosquitto's at the same offered
 * rate and round ('—' without a Mosquitto row to compare with, '1.00' for Mosquitto's own).
 * `round` gives a row's round (interleaved runs); rows of one round compare with each other only.
 */
export function withMosquittoRatio(rows: (string | number)[][], isMosquitto: (row: (string | number)[]) => boolean, round: (row: (string | number)[]) => number = () => 0): (string | number)[][] {
  const reference = new Map<string, number>();
  for (const row of rows) if (isMosquitto(row)) reference.set(`${round(row)}:${row[1]}`, Number(row[PER_MESSAGE_COLUMN]));
  return rows.map((row) => {
    const mosquitto = reference.get(`${round(row)}:${row[1]}`);
    const own = Number(row[PER_MESSAGE_COLUMN]);
    const ratio = mosquitto === undefined || !Number.isFinite(mosquitto) || mosquitto <= 0 || !Number.isFinite(own) ? '—' : `${(own / mosquitto).toFixed(2)}×`;
    return [...row, ratio];
  });
}

/** A rate point's first cells: system, offered/s, sent/s, held back, delivered/s, missing, duplicates, p50 ms, p99 ms. */
export function deliveryCells(name: string, rate: number, point: { sent: number; heldBack: number; elapsed: number; inWindow: ReceiverResult; last: ReceiverResult }): (string | number)[] {
  const { sent, heldBack, elapsed, inWindow, last } = point;
  return [name, rate, Math.round(sent / elapsed), heldBack, Math.round(inWindow.unique / elapsed), sent - last.unique, last.duplicates, last.p50Ms, last.p99Ms];
}

/** Waits until everything sent arrived, or nothing more arrives for 1 s (at most DRAIN_MS); returns the receiver's last counts. */
export async function drained(receiver: () => Promise<ReceiverResult>, sent: number, inWindow: ReceiverResult): Promise<ReceiverResult> {
  let last = inWindow;
  let lastChange = Date.now();
  const deadline = Date.now() + DRAIN_MS;
  while (last.unique < sent && Date.now() < deadline && Date.now() - lastChange < 1000) {
    await sleep(200);
    const now = await receiver();
    if (now.unique !== last.unique) lastChange = Date.now();
    last = now;
  }
  return last;
}

async function idleRun(system: System, dir: string): Promise<(string | number)[]> {
  const broker = await system.start(dir);
  const load = fork(LOAD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    await ready(load, 'the load generator');
    await ask(load, { cmd: 'idle', port: broker.port, count: IDLE_WARMUP }, 60_000);
    await sleep(300);
    const heapBefore = await broker.gc();
    const before = procStat(broker.pid).rssBytes;
    const { connected } = await ask<{ connected: number }>(load, { cmd: 'idle', port: broker.port, count: IDLE_CONNECTIONS }, 60_000);
    await sleep(500);
    const heapAfter = await broker.gc();
    const after = procStat(broker.pid).rssBytes;
    const perConnection = (bytes: number): string => (bytes / connected / 1024).toFixed(1);
    const heap = heapBefore === undefined || heapAfter === undefined ? '—' : perConnection(heapAfter - heapBefore);
    return [system.label, connected, perConnection(after - before), heap];
  } finally {
    await ask(load, { cmd: 'close' }).catch(() => undefined);
    await stopChild(load);
    await broker.stop();
  }
}

/**
 * A focused run for iterating on one point (docs/broker.md#benchmark): LINEWATCH_BENCH_BROKER_RATES=20000[,40000]
 * offers only those rates; LINEWATCH_BENCH_BROKER_ROUNDS=N runs the systems interleaved, N rounds
 * (each system on a fresh broker per rate and round). By default: every rate, one system after the other.
 */
function focusedRun(): { rates: number[]; rounds: number } {
  const rateList = process.env.LINEWATCH_BENCH_BROKER_RATES;
  const rates = rateList ? rateList.split(',').map((rate) => Number(rate.trim())) : RATES;
  if (rates.some((rate) => !Number.isInteger(rate) || rate <= 0)) throw new Error(`LINEWATCH_BENCH_BROKER_RATES=${rateList}: give offered rates in msgs/s, comma-separated, e.g. 20000,40000`);
  const rounds = Number(process.env.LINEWATCH_BENCH_BROKER_ROUNDS ?? 0);
  if (!Number.isInteger(rounds) || rounds < 0) throw new Error(`LINEWATCH_BENCH_BROKER_ROUNDS=${process.env.LINEWATCH_BENCH_BROKER_ROUNDS}: give a whole number of interleaved rounds, e.g. 2`);
  return { rates, rounds };
}

/** The devices file of the bench: DEVICES device accounts and the subscriber's (bench-sub, role rules). */
export async function run(report: Report): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-bench-broker-'));
  try {
    const devicesFile = join(dir, 'devices.json');
    await addBenchAccounts(devicesFile);
    const mosquitto = mosquittoVersion();
    const systems: System[] = [
      { name: 'linewatch (auth, ACL, validation), TCP subscriber', label: 'linewatch (auth, ACL, validation)', start: () => startNodeBroker(['linewatch', devicesFile]), tcpSubscriber: true },
      { name: 'linewatch (auth, ACL, validation), in-process Bus subscriber', label: 'linewatch', start: () => startNodeBroker(['linewatch', devicesFile, 'inproc']), tcpSubscriber: false },
      { name: 'linewatch (open mode), TCP subscriber', label: 'linewatch (open mode)', start: () => startNodeBroker(['linewatch-open']), tcpSubscriber: true },
      { name: 'bare Aedes 1.2.0, TCP subscriber', label: 'bare Aedes 1.2.0', start: () => startNodeBroker(['aedes']), tcpSubscriber: true },
    ];
    if (mosquitto) systems.push({ name: `Mosquitto ${mosquitto}, TCP subscriber`, label: `Mosquitto ${mosquitto}`, start: startMosquitto, tcpSubscriber: true });
    else console.log('  mosquitto not found: skipping the Mosquitto reference (apt-get install mosquitto)');

    // LINEWATCH_BENCH_BROKER=substring runs only the matching systems (for quick iterations).
    const only = process.env.LINEWATCH_BENCH_BROKER;
    if (only) systems.splice(0, systems.length, ...systems.filter((s) => s.name.includes(only)));
    // LINEWATCH_BENCH_BROKER_TABLE=memory runs only the idle-connection table (=load: only the load table).
    const table = process.env.LINEWATCH_BENCH_BROKER_TABLE;
    if (table !== 'memory') {
      const { rates, rounds } = focusedRun();
      const rows: (string | number)[][] = [];
      const roundOf = new Map<(string | number)[], number>();
      if (rounds === 0) {
        for (const system of systems) rows.push(...(await loadRun(system, dir, rates)));
      } else {
        // Interleaved: each round runs every system once per rate, so the systems compare within a round (a shared machine's load moves between rounds).
        for (let round = 1; round <= rounds; round++) {
          for (const rate of rates) {
            for (const system of systems) {
              for (const row of await loadRun(system, dir, [rate])) {
                roundOf.set(row, round);
                rows.push(row);
              }
            }
          }
        }
      }
      const mosquittoName = systems.find((s) => s.name.startsWith('Mosquitto'))?.name;
      const ratioRows = withMosquittoRatio(rows, (row) => row[0] === mosquittoName, (row) => roundOf.get(row) ?? 0);
      if (rounds > 0) for (const [index, row] of ratioRows.entries()) row.splice(1, 0, roundOf.get(rows[index]!) ?? 0);
      report.add({
        title: 'Broker: 100 devices publishing QoS 1, 64-byte telemetry',
        note:
          `Each rate point offers the load for ${SECONDS} s from a separate load-generator process (raw MQTT, one connection per device, ` +
          `after ${WARMUP_SECONDS} s of warm-up at the lowest rate on the same broker, not counted, for every system alike; ` +
          'a device skips its turn while its socket buffer is full: "held back"). Delivered/s counts unique messages the consumer got within the window; ' +
          `missing = sent − unique received after up to ${DRAIN_MS / 1000} s of drain; ` +
          'latency is consumer clock − device timestamp (ms). CPU is the broker process only (100% = one core); the load generator (publishers and TCP subscriber) shares the same 2 cores, and its CPU is shown too. ' +
          '"Reads refused" counts linewatch\'s backpressure: socket reads it declined while deliveries were backed up. ' +
          'µs per delivered message is the broker process\'s own CPU time (process.cpuUsage in a Node broker, /proc/PID/stat for Mosquitto) from the start of the window to the end of the drain, divided by the unique messages delivered by then; × Mosquitto divides it by Mosquitto\'s at the same rate.',
        columns: ['broker / consumer', ...(rounds > 0 ? ['round'] : []), 'offered/s', 'sent/s', 'held back', 'delivered/s', 'missing', 'duplicates', 'p50 ms', 'p99 ms', 'broker CPU', 'broker RSS MiB', 'load-generator CPU', 'reads refused', 'broker CPU µs per delivered message', '× Mosquitto µs per message'],
        rows: ratioRows,
      });
    }

    if (table === 'load') return;
    const idleRows: (string | number)[][] = [];
    for (const system of systems.filter((s) => s.tcpSubscriber)) idleRows.push(await idleRun(system, dir));
    report.add({
      title: 'Broker: memory per idle device connection',
      note:
        `Growth of the broker process for ${IDLE_CONNECTIONS} more idle, authenticated connections (after ${IDLE_WARMUP} already open), divided by their number, ` +
        'after a GC for the Node brokers. RSS also moves with how much heap V8 keeps reserved, so it is noisy; the V8 heap in use is the retained part.',
      columns: ['broker', 'connections', 'RSS KiB per connection', 'V8 heap KiB per connection'],
      rows: idleRows,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
