// One InfluxDB connection from one URL, for every service that talks to InfluxDB (the historian's
// writes and database setup, the dashboard's history queries). The URL keeps everything it says:
// http or https, the port (default 80/443), a path prefix (InfluxDB behind a reverse proxy at
// http://host/influx/, with or without the trailing slash) and credentials in the URL
// (http://user:pass@host:8086, percent-decoded; explicit username/password win).
//
// node-influx retries and disables a failing host on its own (a single-host pool then fails fast
// with "No host available" while it backs off). linewatch owns retries and backoff instead (the
// historian's writer; a history query is the user's next click), so both are switched off here:
// maxRetries 0 and a backoff that never disables the host.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { InfluxDB } from 'influx';
// The pool is node-influx's HTTP layer (auth, timeouts, error types); it is not re-exported from
// the package root, and the package has no `exports` map, so this deep import is stable for 5.x.
import { Pool } from 'influx/lib/src/pool.js';
import type { IBackoffStrategy } from 'influx/lib/src/backoff/backoff.js';

const neverDisable: IBackoffStrategy = {
  getDelay: () => 0,
  next: () => neverDisable,
  reset: () => neverDisable,
};

/** A request's timeout when the caller gives none (the historian's own is historian.requestTimeoutMs). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** Where InfluxDB is and how to log in. */
export interface InfluxEndpoint {
  url: string;
  database: string;
  /** Overrides a username in the URL. */
  username?: string;
  /** Overrides a password in the URL. */
  password?: string;
  /** Per-request timeout; default DEFAULT_REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
}

/** What a URL says, split the way node-influx wants it. */
export interface InfluxUrlParts {
  protocol: 'http' | 'https';
  hostname: string;
  port: number;
  /** The path prefix without a trailing slash: '' for the root, '/influx' for http://host/influx/. */
  path: string;
  username: string | undefined;
  password: string | undefined;
  /** The URL without credentials and without a trailing slash, e.g. https://host:443/influx (safe to log). */
  baseUrl: string;
}

/** Splits an InfluxDB base URL; the error says what is wrong with it. */
export function parseInfluxUrl(url: string, credentials: { username?: string; password?: string } = {}): InfluxUrlParts {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`the InfluxDB URL "${url}" is not a URL; give a base URL like http://127.0.0.1:8086 or https://user:pass@host/influx/`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new Error(`the InfluxDB URL must start with http:// or https://, got "${parsed.protocol}//${parsed.host}"; InfluxDB 1.x (and the v1 API of 2.x/3.x) speaks HTTP`);
  }
  const protocol = parsed.protocol === 'https:' ? 'https' : 'http';
  const port = Number(parsed.port || (protocol === 'https' ? 443 : 80));
  const path = parsed.pathname.replace(/\/+$/, '');
  const username = credentials.username ?? (parsed.username ? decodeURIComponent(parsed.username) : undefined);
  const password = credentials.password ?? (parsed.password ? decodeURIComponent(parsed.password) : undefined);
  return { protocol, hostname: parsed.hostname, port, path, username, password, baseUrl: `${protocol}://${parsed.hostname}:${port}${path}` };
}

/** A connection to one InfluxDB: the node-influx client, and its request pool for raw writes. */
export interface InfluxConnection {
  readonly parts: InfluxUrlParts;
  /** Queries and admin (createDatabase, retention policies, continuous queries). */
  readonly influx: InfluxDB;
  /** The same host through node-influx's request pool, for line protocol as it is (POST /write). */
  readonly pool: Pool;
  /** `user:password` for `pool` requests (sent as basic auth), when there are credentials. */
  readonly auth: string | undefined;
  /** The kept-alive connections both use, for a request of one's own (a streamed query, workbench/backtest/influx-stream.ts). */
  readonly agent: HttpAgent | HttpsAgent;
  /** Closes the kept-alive connections (they would otherwise hold the process open). */
  close(): void;
}

export function connectInflux(endpoint: InfluxEndpoint): InfluxConnection {
  const parts = parseInfluxUrl(endpoint.url, endpoint);
  const agent = parts.protocol === 'https' ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  const poolOptions = { maxRetries: 0, backoff: neverDisable, requestTimeout: endpoint.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS };
  const pool = new Pool(poolOptions);
  pool.addHost(parts.baseUrl, { agent });
  const influx = new InfluxDB({
    host: parts.hostname,
    port: parts.port,
    protocol: parts.protocol,
    path: parts.path,
    database: endpoint.database,
    username: parts.username,
    password: parts.password,
    pool: poolOptions,
    options: { agent },
  });
  return {
    parts,
    influx,
    pool,
    agent,
    auth: parts.username !== undefined ? `${parts.username}:${parts.password ?? ''}` : undefined,
    close: () => agent.destroy(),
  };
}

/** `url` with any password in it replaced by `***`, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@');
  }
}
