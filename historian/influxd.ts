// A managed `influxd` (InfluxDB 1.x, Debian package `influxdb`) as a child process, with its
// config, data, WAL and log under one directory and every listener on 127.0.0.1 — the embedded
// default for `linewatch up`/`linewatch historian` when no InfluxDB is configured, and what the
// tests start (test/harness/influx.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
  /** Resolves once the process has exited. */
  exited: Promise<void>;
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
  /** Started here (no InfluxDB configured): whoever called influxToUse stops it. */
  managed: ManagedInfluxd | undefined;
}

/**
 * The one place that decides where history goes and starts a managed influxd for it (`linewatch
 * up` and the historian both ask here): the configured InfluxDB (`historian.influxUrl` or
 * `--influx`) as it is, else a managed influxd with its data in `<dataDir>/influxd`.
 */
export async function influxToUse(configuredUrl: string | null | undefined, dataDir: string): Promise<InfluxInUse> {
  if (configuredUrl) return { url: configuredUrl, managed: undefined };
  const managed = await startManagedInfluxd({ dataDir: managedInfluxdDir(dataDir) });
  return { url: managed.url, managed };
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
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      resolve();
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
