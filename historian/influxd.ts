// A managed `influxd` (InfluxDB 1.x, Debian package `influxdb`) as a child process, with its
// config, data, WAL and log under one directory and every listener on 127.0.0.1 — the embedded
// default for `linewatch up`/`linewatch historian` when no InfluxDB is configured, and what the
// tests start (test/harness/influx.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Backoff } from '../lib/backoff.js';
import { findExecutable, isExecutableFile, searchPath } from '../lib/find-executable.js';
import { freePort } from '../lib/free-port.js';
import { logTail } from '../lib/log-tail.js';
import { logger } from '../lib/log.js';
import { sleep } from '../lib/wait.js';

export { freePort } from '../lib/free-port.js';

const log = logger('influxd');

export const INFLUXD_INSTALL_HINT = 'install InfluxDB 1.x: `sudo apt-get install influxdb` (Debian/Ubuntu), or set historian.influxUrl / --influx to an InfluxDB you run yourself';

export interface ManagedInfluxdOptions {
  /** Holds influxd.conf, meta/, data/, wal/ and influxd.log; created if missing. */
  dataDir: string;
  /** HTTP API port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number;
  /** Path to the influxd binary; defaults to the one on PATH (or /usr/bin/influxd). */
  binary?: string;
  /** How long to wait for /ping to answer 204 (ms). */
  startTimeoutMs?: number;
}

export interface ManagedInfluxd {
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:38086 */
  url: string;
  port: number;
  pid: number;
  /** SIGTERM, then SIGKILL if it has not exited within 10 s. Idempotent. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL) without waiting — for crash tests. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once the process has exited, with its exit code or the signal that ended it. */
  exited: Promise<InfluxdExit>;
}

export interface InfluxdExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * The influxd binary: $LINEWATCH_INFLUXD if set, else the one on PATH (or in the usual Debian
 * places); undefined if there is none.
 */
export function findInfluxd(dirs = searchPath(['/usr/bin', '/usr/sbin', '/usr/local/bin'])): string | undefined {
  const chosen = process.env.LINEWATCH_INFLUXD;
  if (chosen) return isExecutableFile(chosen) ? chosen : undefined;
  return findExecutable('influxd', dirs);
}

/** influxd.conf for one private instance. Every listener is on 127.0.0.1; nothing phones home. */
export function influxdConfig(dataDir: string, httpPort: number, rpcPort: number): string {
  const q = (s: string): string => JSON.stringify(s);
  return `# Written by linewatch (historian/influxd.ts) on every start; edits are overwritten.
reporting-enabled = false
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = ${q(join(dataDir, 'meta'))}
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = ${q(join(dataDir, 'data'))}
  wal-dir = ${q(join(dataDir, 'wal'))}
  index-version = "inmem"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  auth-enabled = false
  log-enabled = false
  suppress-write-log = true
  pprof-enabled = false
  unix-socket-enabled = false
  max-body-size = 0

[logging]
  level = "warn"
  suppress-logo = true

[ifql]
  enabled = false

[continuous_queries]
  log-enabled = false
  enabled = true
  run-interval = "1s"
`;
}

/** The InfluxDB a historian writes to, and the managed influxd behind it if one was started. */
export interface InfluxInUse {
  url: string;
  /** Started here (no InfluxDB configured), supervised: whoever called influxToUse stops it. */
  managed: SupervisedInfluxd | undefined;
}

/**
 * The one place that decides where history goes and starts a managed influxd for it (`linewatch
 * up` and the historian both ask here): the configured InfluxDB (`historian.influxUrl` or
 * `--influx`) as it is, else a managed influxd with its data in `<dataDir>/influxd`.
 */
export async function influxToUse(configuredUrl: string | null | undefined, dataDir: string, hooks: SupervisorHooks = {}): Promise<InfluxInUse> {
  if (configuredUrl) return { url: configuredUrl, managed: undefined };
  const options = { dataDir: managedInfluxdDir(dataDir) };
  const managed = await startManagedInfluxd(options);
  return { url: managed.url, managed: new SupervisedInfluxd(managed, options, hooks) };
}

/** Restart policy of a managed influxd that exits on its own (docs/historian.md, "The managed influxd"). */
export const RESTART_POLICY = {
  /** The delays between restarts: lib/backoff.ts, equal jitter, from initialMs doubling to maxMs. */
  initialMs: 1000,
  maxMs: 30_000,
  /** An influxd that exits (or fails to start) within this long of its start is a quick failure. */
  quickFailureMs: 60_000,
  /** This many quick failures in a row and it is not restarted again (logged at error). */
  maxQuickFailures: 5,
} as const;

export interface SupervisorHooks {
  /** A new influxd answers on the same URL (its pid is new). */
  onRestart?(pid: number, previousPid: number): void;
  /** It failed RESTART_POLICY.maxQuickFailures times in a row and stays down. */
  onGiveUp?(reason: string): void;
}

function describeExit(exit: InfluxdExit): string {
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/**
 * A managed influxd that is started again when it exits on its own (a crash, the OOM killer, a
 * SIGKILL): on the same port and data dir — so the URL the historian and the dashboard hold stays
 * right — after a backoff delay, each exit logged at warn with its signal or code and the attempt.
 * It gives up, logging at error, after RESTART_POLICY.maxQuickFailures quick failures in a row.
 * stop() ends it for good; kill() signals the influxd running now (crash tests).
 */
export class SupervisedInfluxd implements ManagedInfluxd {
  readonly url: string;
  readonly port: number;
  readonly exited: Promise<InfluxdExit>;
  /** Times it was started again after exiting on its own. */
  restarts = 0;
  /** True once it gave up restarting (RESTART_POLICY.maxQuickFailures quick failures in a row). */
  gaveUp = false;
  private current: ManagedInfluxd;
  private runningChild = true;
  private startedAt = Date.now();
  private stopped = false;
  private quickFailures = 0;
  private readonly backoff = new Backoff({ initialMs: RESTART_POLICY.initialMs, maxMs: RESTART_POLICY.maxMs, jitter: 'equal' });
  private cancelSleep: (() => void) | undefined;
  private supervising: Promise<void> = Promise.resolve();
  private lastExit: InfluxdExit = { code: null, signal: null };
  private resolveExited!: (exit: InfluxdExit) => void;

  constructor(
    first: ManagedInfluxd,
    private readonly options: ManagedInfluxdOptions,
    private readonly hooks: SupervisorHooks = {},
  ) {
    this.current = first;
    this.url = first.url;
    this.port = first.port;
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
    this.watch(first);
  }

  /** The pid of the influxd running now (or last). */
  get pid(): number {
    return this.current.pid;
  }

  /** True while an influxd of ours runs (false between a crash and its restart, and after giving up). */
  get running(): boolean {
    return this.runningChild;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.current.kill(signal);
  }

  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.cancelSleep?.();
    }
    await this.current.stop();
    await this.supervising;
    this.runningChild = false;
    this.resolveExited(this.lastExit);
  }

  private watch(child: ManagedInfluxd): void {
    void child.exited.then((exit) => {
      this.lastExit = exit;
      this.runningChild = false;
      if (this.stopped) return;
      this.supervising = this.restart(child.pid, describeExit(exit), Date.now() - this.startedAt);
    });
  }

  private async restart(previousPid: number, why: string, ranMs: number): Promise<void> {
    for (;;) {
      if (ranMs < RESTART_POLICY.quickFailureMs) this.quickFailures++;
      else {
        this.quickFailures = 1;
        this.backoff.reset();
      }
      if (this.quickFailures >= RESTART_POLICY.maxQuickFailures) {
        this.gaveUp = true;
        const reason = `the managed influxd failed ${this.quickFailures} times in a row within ${RESTART_POLICY.quickFailureMs / 1000} s of its start (last: ${why}); not restarting it again. Events wait in the historian spool; see ${join(this.options.dataDir, 'influxd.log')}, then restart linewatch`;
        log.error({ pid: previousPid, url: this.url, quickFailures: this.quickFailures }, reason);
        this.hooks.onGiveUp?.(reason);
        this.resolveExited(this.lastExit);
        return;
      }
      const delayMs = Math.round(this.backoff.next());
      const attempt = this.backoff.attempts;
      log.warn({ pid: previousPid, url: this.url, ranMs, attempt, delayMs, quickFailures: this.quickFailures, maxQuickFailures: RESTART_POLICY.maxQuickFailures }, `managed influxd went down (${why}); restarting it in ${delayMs} ms (attempt ${attempt}; it gives up after ${RESTART_POLICY.maxQuickFailures} quick failures in a row)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        this.cancelSleep = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.cancelSleep = undefined;
      if (this.stopped) return;
      let next: ManagedInfluxd;
      try {
        next = await startManagedInfluxd({ ...this.options, port: this.port });
      } catch (err) {
        why = `its restart failed: ${(err as Error).message}`;
        ranMs = 0;
        continue;
      }
      if (this.stopped) {
        await next.stop();
        return;
      }
      this.current = next;
      this.startedAt = Date.now();
      this.runningChild = true;
      this.restarts++;
      log.warn({ pid: next.pid, previousPid, url: this.url, attempt, restarts: this.restarts }, 'managed influxd is back');
      this.hooks.onRestart?.(next.pid, previousPid);
      this.watch(next);
      return;
    }
  }
}

/** Where a managed influxd keeps its config, data, WAL and log under linewatch's data dir. */
export function managedInfluxdDir(dataDir: string): string {
  return join(dataDir, 'influxd');
}

/**
 * Starts influxd with its config and data under `dataDir`, waits (bounded) until /ping answers
 * 204, and returns a handle. If influxd is not installed, rejects with the install command.
 */
export async function startManagedInfluxd(options: ManagedInfluxdOptions): Promise<ManagedInfluxd> {
  const binary = options.binary ?? findInfluxd();
  if (!binary) {
    const where = process.env.LINEWATCH_INFLUXD ? `at LINEWATCH_INFLUXD=${process.env.LINEWATCH_INFLUXD}` : 'on PATH';
    throw Object.assign(new Error(`influxd was not found ${where}; ${INFLUXD_INSTALL_HINT}`), { userFacing: true });
  }
  mkdirSync(options.dataDir, { recursive: true });
  // A port picked by freePort() can be taken by someone else before influxd binds it; when the
  // child dies with "address already in use" we pick new ports and try again.
  const attempts = options.port ? 1 : 3;
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const port = options.port || (await freePort());
    const rpcPort = await freePortOtherThan(port);
    try {
      return await launch(binary, options, port, rpcPort);
    } catch (err) {
      lastError = err as Error;
      if (!/address already in use/i.test(lastError.message)) break;
      log.warn({ port, rpcPort, attempt }, 'influxd port was taken; retrying on other ports');
    }
  }
  throw lastError!;
}

async function freePortOtherThan(port: number): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p !== port) return p;
  }
}

async function launch(binary: string, options: ManagedInfluxdOptions, port: number, rpcPort: number): Promise<ManagedInfluxd> {
  const { dataDir, startTimeoutMs = 30_000 } = options;
  const configFile = join(dataDir, 'influxd.conf');
  const logFile = join(dataDir, 'influxd.log');
  writeFileSync(configFile, influxdConfig(dataDir, port, rpcPort));
  const logFd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    // INFLUXDB_* variables would override the file; start from a clean slate.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('INFLUXDB_')));
    // Own process group: a Ctrl-C at the terminal reaches the whole foreground group, and influxd
    // must not stop before the historian has flushed to it; stop() ends it in order instead.
    child = spawn(binary, ['run', '-config', configFile], { stdio: ['ignore', logFd, logFd], env, detached: true });
  } finally {
    closeSync(logFd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    const err = await new Promise<Error>((r) => child.once('error', r));
    throw Object.assign(new Error(`could not start ${binary} (${err.message}); ${INFLUXD_INSTALL_HINT}`), { userFacing: true });
  }
  let exitInfo: string | undefined;
  const exited = new Promise<InfluxdExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      resolve({ code, signal });
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (exitInfo !== undefined) {
      throw new Error(`influxd exited during start (${exitInfo}): ${logTail(logFile)}; see ${logFile}`);
    }
    if (await ping(url)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`influxd did not answer ${url}/ping within ${startTimeoutMs} ms; see ${logFile}`);
    }
    await sleep(50);
  }
  log.info({ url, pid, dataDir }, 'managed influxd started');

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
    url,
    port,
    pid,
    stop,
    kill: (signal = 'SIGKILL') => {
      if (exitInfo === undefined) child.kill(signal);
    },
    exited,
  };
}

/** True when `url`/ping answers 204 within a second. */
export async function ping(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.status === 204;
  } catch {
    return false;
  }
}
