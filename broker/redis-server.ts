// A managed `redis-server` (Debian package `redis-server`) as a child process, with its config,
// append-only file, pid file and log under one directory and its one listener on 127.0.0.1 — the
// broker's Redis store when `broker.persistence: redis` names no `broker.redis.url`, and what the
// tests start (test/harness/redis.ts). Like the managed influxd (historian/influxd.ts): its own
// process group, a bounded ready check, SIGTERM then SIGKILL on stop.
//
// Durability: AOF on, `appendfsync everysec`, no RDB snapshots (docs/broker.md#redis says what a
// SIGKILL of the broker or of redis-server can lose with it). A redis-server left running by a
// SIGKILLed broker (it is in its own process group, so it outlives the broker) is found through
// its pid file and its working directory, and stopped gracefully (it writes its AOF)
// before a new one starts on the same files: never two on one directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { findExecutable, isExecutableFile, searchPath } from '../lib/find-executable.js';
import { freePort } from '../lib/free-port.js';
import { logger } from '../lib/log.js';
import { logTail } from '../lib/log-tail.js';
import { processAlive } from '../lib/process-alive.js';
import { sleep, waitFor } from '../lib/wait.js';

const log = logger('redis-server');

export const REDIS_INSTALL_HINT = 'install Redis: `sudo apt-get install redis-server` (Debian/Ubuntu), or set broker.redis.url to a Redis you run yourself';

/**
 * How the AOF is flushed. `everysec`: every write is in the kernel's page cache before Redis
 * answers (so a SIGKILL of redis-server loses nothing acknowledged), fsync'd once a second (so a
 * power loss or kernel crash loses up to ~1–2 s). `always` would fsync before every answer: the
 * broker's QoS 1 throughput would follow the disk's fsync rate.
 */
export const MANAGED_REDIS_APPENDFSYNC = 'everysec';

export interface ManagedRedisOptions {
  /** Holds redis.conf, appendonlydir/, redis.pid and redis.log; created if missing. */
  dir: string;
  /** TCP port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number;
  /** Path to the redis-server binary; defaults to $LINEWATCH_REDIS_SERVER, else the one on PATH. */
  binary?: string;
  /** How long to wait for PING to answer PONG (ms); loading a large AOF takes part of it. */
  startTimeoutMs?: number;
}

export interface ManagedRedis {
  /** e.g. redis://127.0.0.1:36379 */
  url: string;
  port: number;
  pid: number;
  /** SIGTERM (Redis writes its AOF and exits), then SIGKILL if it has not exited within 10 s. Idempotent. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL) without waiting — for crash tests. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once the process has exited. */
  exited: Promise<void>;
}

/** The redis-server binary: $LINEWATCH_REDIS_SERVER if set, else the one on PATH (or in the usual Debian places); undefined if there is none. */
export function findRedisServer(dirs = searchPath(['/usr/bin', '/usr/sbin', '/usr/local/bin'])): string | undefined {
  const chosen = process.env.LINEWATCH_REDIS_SERVER;
  if (chosen) return isExecutableFile(chosen) ? chosen : undefined;
  return findExecutable('redis-server', dirs);
}

/** redis.conf for one private instance: loopback only, AOF on, no RDB snapshots. */
export function redisConfig(dir: string, port: number): string {
  const q = (text: string): string => JSON.stringify(text);
  return `# Written by linewatch (broker/redis-server.ts) on every start; edits are overwritten.
bind 127.0.0.1
protected-mode yes
port ${port}
daemonize no
supervised no
dir ${q(dir)}
pidfile ${q(join(dir, 'redis.pid'))}
logfile ${q(join(dir, 'redis.log'))}
loglevel notice
databases 1
save ""
appendonly yes
appenddirname "appendonlydir"
appendfsync ${MANAGED_REDIS_APPENDFSYNC}
aof-use-rdb-preamble yes
aof-load-truncated yes
`;
}

/**
 * Starts redis-server with its config and data under `dir` (stopping a leftover one of the same
 * directory first), waits (bounded) until PING answers PONG, and returns a handle. If
 * redis-server is not installed, rejects with the install command.
 */
export async function startManagedRedis(options: ManagedRedisOptions): Promise<ManagedRedis> {
  const binary = options.binary ?? findRedisServer();
  if (!binary) {
    const where = process.env.LINEWATCH_REDIS_SERVER ? `at LINEWATCH_REDIS_SERVER=${process.env.LINEWATCH_REDIS_SERVER}` : 'on PATH';
    throw Object.assign(new Error(`redis-server was not found ${where}; ${REDIS_INSTALL_HINT}`), { userFacing: true });
  }
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true });
  await stopLeftover(dir, binary);
  // A port picked by freePort() can be taken before redis-server binds it: pick another and retry.
  const attempts = options.port ? 1 : 3;
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const port = options.port || (await freePort());
    try {
      return await launch(binary, dir, port, options.startTimeoutMs ?? 30_000);
    } catch (err) {
      lastError = err as Error;
      if (!/address already in use/i.test(lastError.message)) break;
      log.warn({ port, attempt }, 'redis-server port was taken; retrying on another port');
    }
  }
  throw lastError!;
}

/** The redis-server of this directory still running from an earlier start (its pid file names a live redis-server working in this directory), if any. */
export function leftoverPid(dir: string, binary = findRedisServer()): number | undefined {
  if (binary === undefined) return undefined;
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(join(dir, 'redis.pid'), 'utf8').trim(), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    // redis-server rewrites its argv and environ (its process title), so what tells it apart is
    // the program and its working directory: the `dir` of its config, which is this directory.
    // (Debian's redis-server is a link to redis-check-rdb: compare where both lead.)
    return realpathSync(`/proc/${pid}/exe`) === realpathSync(binary) && realpathSync(`/proc/${pid}/cwd`) === realpathSync(dir) ? pid : undefined;
  } catch {
    return undefined; // gone, or not ours to read
  }
}

async function stopLeftover(dir: string, binary: string): Promise<void> {
  const pid = leftoverPid(dir, binary);
  if (pid === undefined) return;
  log.warn({ pid, dir }, 'a redis-server left running by an earlier broker on this data dir (killed before it could stop it): stopping it (it writes its append-only file) before starting a new one');
  process.kill(pid, 'SIGTERM');
  const gone = (): boolean => leftoverPid(dir, binary) === undefined || !processAlive(pid);
  try {
    await waitFor(gone, 10_000, `the leftover redis-server (pid ${pid}) to exit after SIGTERM`, 50);
  } catch {
    process.kill(pid, 'SIGKILL');
    await waitFor(() => !processAlive(pid), 5_000, `the leftover redis-server (pid ${pid}) to exit after SIGKILL`, 50);
  }
}


async function launch(binary: string, dir: string, port: number, startTimeoutMs: number): Promise<ManagedRedis> {
  const configFile = join(dir, 'redis.conf');
  const logFile = join(dir, 'redis.log');
  writeFileSync(configFile, redisConfig(dir, port));
  // redis-server logs to its logfile; what it writes before opening it (a bad config line) goes here.
  const startupLog = join(dir, 'redis-startup.log');
  const logFd = openSync(startupLog, 'w');
  let child: ChildProcess;
  try {
    // Own process group: a Ctrl-C reaches the whole foreground group, and Redis must not stop
    // before the broker has closed its connections to it; stop() ends it in order instead.
    child = spawn(binary, [configFile], { stdio: ['ignore', logFd, logFd], cwd: dir, detached: true });
  } finally {
    closeSync(logFd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    const err = await new Promise<Error>((resolveError) => child.once('error', resolveError));
    throw Object.assign(new Error(`could not start ${binary} (${err.message}); ${REDIS_INSTALL_HINT}`), { userFacing: true });
  }
  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolveExit) => {
    child.once('exit', (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      resolveExit();
    });
  });
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (exitInfo !== undefined) {
      throw new Error(`redis-server exited during start (${exitInfo}): ${logTail(logFile)} ${logTail(startupLog)}; see ${logFile}`);
    }
    if (await redisPing(port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} within ${startTimeoutMs} ms; see ${logFile}`);
    }
    await sleep(50);
  }
  log.info({ port, pid, dir }, 'managed redis-server started');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitInfo !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    })();
    return stopping;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid,
    stop,
    kill: (signal = 'SIGKILL') => {
      if (exitInfo === undefined) child.kill(signal);
    },
    exited,
  };
}

/** True when a Redis on 127.0.0.1:`port` answers PING with PONG within a second (not while it is still loading its AOF). */
export function redisPing(port: number): Promise<boolean> {
  return new Promise((resolvePing) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolvePing(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}
