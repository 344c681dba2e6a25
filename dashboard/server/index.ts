// The dashboard's HTTP server (node:http): the page, live updates over server-sent events fed by
// a Bus subscription to lw/#, a small REST API, history from InfluxDB, /metrics and /healthz.
// A token guards everything but the page's static files and /healthz when one is configured,
// and one is generated (and printed by the caller) when bound beyond loopback without one.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIPv4, type AddressInfo } from 'node:net';
import { z } from 'zod';
import { MessageRefused, type Bus, type Unsubscribe } from '../../bus/bus.js';
import { ALARM_ACTIONS, DELIVERY, MAX_SHELVE_MS, topics, type AlarmAction, type AlarmSetPayload } from '../../contracts/index.js';
import { formatIssues } from '../../contracts/validate.js';
import { listenOn } from '../../lib/listen.js';
import { logger } from '../../lib/log.js';
import type { Counters, Service } from '../../lib/service.js';
import type { DashboardConfig } from '../config.js';
import { parseDeviceQuery, readDeviceHistory, type DeviceHistory } from './device-detail.js';
import { HistoryReader, parseDowntimeQuery, parseHistoryQuery, readDowntime, type InfluxTarget } from './history.js';
import { LineView, type LineSummaryView, type LineViewLimits } from './line-view.js';
import { ShadowView } from './shadow-view.js';
import { Metrics } from '../../lib/metrics.js';
import { healthHttpStatus, healthReport, type HealthSource } from '../../lib/service-http.js';
import { healthFrom, type Health } from '../../lib/service.js';
import { SseHub, type SseOptions } from './sse.js';
import { StaticFiles, findPublicDir } from './static.js';

export { LineView } from './line-view.js';
export type { LineSnapshot, LineDelta, DeviceView, CommandView, AlertView, AlarmTransitionView } from './line-view.js';
export { buildHistoryQuery, parseHistoryQuery, type InfluxTarget } from './history.js';
export { Metrics, metricName, type MetricSource } from '../../lib/metrics.js';

const log = logger('dashboard');

/** How long a failed history query keeps health() degraded unless a query succeeds first. */
const HISTORY_FAILURE_MEMORY_MS = 60_000;

export interface DashboardServerOptions {
  bus: Bus;
  config: Pick<DashboardConfig, 'host' | 'port' | 'token'>;
  /** Where /api/history reads; null or absent answers 503 with a clear message. */
  influx?: InfluxTarget | null;
  /** The other services of this process, whose counters /metrics and health /healthz expose (the dashboard adds itself). */
  metricSources?: () => HealthSource[];
  sse?: Partial<SseOptions>;
  /** Caps on what the live view keeps (commands 50, devices 10,000, active alerts 1,000). */
  viewLimits?: Partial<LineViewLimits>;
  /** A device's data-quality totals since the historian beside it started (`linewatch up`), for GET /api/device; absent: none. */
  deviceQuality?: (line: string, device: string) => Readonly<Record<string, number>> | undefined;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_BODY_BYTES = 16 * 1024;

/** The page loads only its own scripts and styles (uPlot sets inline styles, hence 'unsafe-inline' for style). */
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
};

/** Who acts when the request names no operator. */
const DEFAULT_OPERATOR = 'user:dashboard';

const alertActionSchema = z.strictObject({
  id: z.string().min(1).max(128),
  line: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
  /** Who acts, e.g. `ana` (sent as `user:ana`); default user:dashboard. */
  operator: z.string().regex(/^[\p{L}\p{N} _.@-]{1,64}$/u, 'must be a name: 1–64 letters, digits, spaces, _ . @ -').optional(),
  comment: z.string().max(1024).optional(),
  /** For shelve: for how long, in minutes (at most a day). */
  minutes: z.number().positive().max(MAX_SHELVE_MS / 60_000).optional(),
});

/** The endpoint of each operator action: POST /api/alerts/{acknowledge,shelve,unshelve,clear}. */
const ACTION_ROUTES: ReadonlyMap<string, AlarmAction> = new Map(ALARM_ACTIONS.map((action) => [`POST /api/alerts/${action}`, action]));

/** Exactly a loopback name or address: `localhost`, `::1`, or 127.x.y.z as an IPv4 literal (not a name starting with "127."). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'));
}

/** The host of a Host header (`name`, `name:port`, `[v6]`, `[v6]:port`), lower-cased; undefined if it is none of these. */
function hostOf(header: string): string | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(header);
  return (match?.[1] ?? match?.[2])?.toLowerCase();
}

export class DashboardServer implements Service {
  readonly name = 'dashboard';
  readonly view: LineView;
  /** The token clients must present, or null when none is required (loopback without a configured token). */
  readonly token: string | null;
  /** True when the token was generated here (the caller prints it once). */
  readonly tokenGenerated: boolean;
  private readonly sse: SseHub;
  private readonly metrics: Metrics;
  private readonly history: HistoryReader | null;
  /** Where a shadow rule set's commands and the live ones differ (GET /api/shadow). */
  readonly shadow = new ShadowView();
  private staticFiles: StaticFiles | undefined;
  private server: Server | undefined;
  private unsubscribe: Unsubscribe | undefined;
  private readonly started = Date.now();
  private readonly stats = {
    http_requests: 0,
    http_client_errors: 0,
    http_server_errors: 0,
    http_unauthorized: 0,
    alerts_published: 0,
    alerts_not_recorded: 0,
    history_queries: 0,
    history_errors: 0,
  };

  constructor(private readonly options: DashboardServerOptions) {
    this.view = new LineView(options.viewLimits);
    const { host, token } = options.config;
    this.tokenGenerated = !token && !isLoopback(host);
    this.token = token ?? (this.tokenGenerated ? randomBytes(18).toString('base64url') : null);
    this.sse = new SseHub(this.view, { maxUpdatesPerSecond: 10, maxQueuedEvents: 100, keepAliveMs: 15_000, ...options.sse });
    this.metrics = new Metrics(() => [this, ...(options.metricSources?.() ?? [])]);
    this.history = options.influx ? new HistoryReader(options.influx) : null;
  }

  /** The base URL once started, e.g. http://127.0.0.1:8080 */
  get url(): string {
    const address = this.server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error('the dashboard is not started');
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
  }

  get port(): number {
    return (this.server?.address() as AddressInfo).port;
  }

  async start(): Promise<void> {
    this.staticFiles = new StaticFiles(findPublicDir());
    const server = createServer((req, res) => void this.route(req, res));
    // Listen first: if the port is taken (AddressInUse) there is nothing else to undo.
    await listenOn(server, { host: this.options.config.host, port: this.options.config.port, what: 'the dashboard', setting: 'dashboard.port' });
    this.server = server;
    // With the retained messages: the devices' state and status, and the rules engine's alarm states.
    this.unsubscribe = await this.options.bus.subscribe(
      topics.all,
      (topic, payload, decoded) => {
        this.view.handle(topic, payload, decoded);
        this.shadow.handle(topic, payload, decoded);
      },
      { retained: true },
    );
    this.sse.start();
    log.info({ url: this.url }, 'dashboard listening');
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.sse.stop();
    await this.unsubscribe?.();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.history?.close();
  }

  /** The keys of counters() that are levels. */
  readonly gauges: ReadonlySet<string> = new Set(['static_cache_entries', 'sse_clients']);
  /** When the last /api/history query failed to reach InfluxDB, if the last one did (health). */
  private historyFailedAt: number | undefined;

  /**
   * Down when not serving or not hearing the bus; degraded for a minute after a history query
   * failed to reach InfluxDB (history switched off is not a fault: /api/history says so).
   */
  health(): Health {
    return healthFrom([
      { failed: !this.server, status: 'down', reason: 'not serving HTTP (not started or stopped)' },
      { failed: this.server !== undefined && !this.options.bus.connected(), status: 'down', reason: 'not connected to the broker: the live view is stale until it reconnects' },
      { failed: this.historyFailedAt !== undefined && Date.now() - this.historyFailedAt < HISTORY_FAILURE_MEMORY_MS, status: 'degraded', reason: 'the last history query (within the last minute) did not reach InfluxDB' },
    ]);
  }

  counters(): Counters {
    return { ...this.stats, static_cache_entries: this.staticFiles?.cacheSize ?? 0, ...this.sse.counters, bus_messages: this.view.counters.messages, bus_messages_invalid: this.view.counters.invalid, view_over_capacity: this.view.counters.over_capacity, commands_seen: this.view.counters.commands, commands_acked: this.view.counters.commands_acked };
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.http_requests++;
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const method = req.method ?? 'GET';
    try {
      if (url.pathname === '/healthz') {
        const report = healthReport([this, ...(this.options.metricSources?.() ?? [])], this.started);
        // Open to probes without the token, but then only the verdict: the reasons name paths,
        // rule ids and sizes, which are the API's to tell.
        const full = this.mayReadDetails(req, url);
        return this.json(res, healthHttpStatus(report), full ? report : { status: report.status, uptimeMs: report.uptimeMs, details: 'send the token (Authorization: Bearer TOKEN or ?token=) for every service\'s health and reasons' });
      }
      if (url.pathname === '/favicon.ico') {
        res.writeHead(204).end(); // no icon; answering keeps the browser's console clean
        return;
      }
      const isApi = url.pathname.startsWith('/api/') || url.pathname === '/events' || url.pathname === '/metrics';
      if (!isApi) {
        if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} is not allowed on ${url.pathname}; use GET`);
        const file = await this.staticFiles!.get(url.pathname);
        if (!file) throw new HttpError(404, `no such page: ${url.pathname}`);
        res.writeHead(200, { 'content-type': file.type, 'content-length': file.body.length, 'cache-control': 'no-cache', ...SECURITY_HEADERS });
        res.end(method === 'HEAD' ? undefined : file.body);
        return;
      }
      this.authorize(req, url);
      // A cross-site form or fetch cannot send application/json without a CORS preflight we never
      // allow, so this keeps other web pages from acknowledging or clearing alerts (CSRF).
      if (method === 'POST' && !/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
        throw new HttpError(415, 'send the body as JSON with Content-Type: application/json');
      }
      const route = `${method} ${url.pathname}`;
      switch (route) {
        case 'GET /events':
          return this.sse.attach(res);
        case 'GET /api/state':
          return this.json(res, 200, this.state());
        case 'GET /api/commands':
          return this.json(res, 200, { commands: this.view.recentCommands() });
        case 'GET /api/alerts':
          return this.json(res, 200, { alerts: this.view.activeAlerts() });
        case 'GET /api/shadow':
          return this.json(res, 200, this.shadow.report());
        case 'GET /api/alarms':
          return this.json(res, 200, { alarms: this.view.alarms(), transitions: this.view.recentTransitions() });
        case 'GET /api/history':
          return this.json(res, 200, await this.readHistory(url));
        case 'GET /api/downtime':
          return this.json(res, 200, await this.readDowntimePareto(url));
        case 'GET /api/device':
          return this.json(res, 200, await this.deviceDetail(url));
        case 'GET /metrics': {
          const text = await this.metrics.render();
          res.writeHead(200, { 'content-type': this.metrics.contentType });
          res.end(text);
          return;
        }
        default: {
          const action = ACTION_ROUTES.get(route);
          if (action) return this.json(res, 202, await this.alertAction(req, action));
          throw new HttpError(404, `no such endpoint: ${method} ${url.pathname}; see docs/dashboard.md for the API`);
        }
      }
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (status >= 500) {
        this.stats.http_server_errors++;
        log.error({ err, url: url.pathname }, 'dashboard request failed');
      } else {
        this.stats.http_client_errors++;
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      this.json(res, status, { error: (err as Error).message });
    }
  }

  /** Whether this request may read what the token guards (/healthz's details); not counted as a refusal. */
  private mayReadDetails(req: IncomingMessage, url: URL): boolean {
    return this.refusal(req, url) === undefined;
  }

  /** Throws (and counts) the refusal of a request the token guards. */
  private authorize(req: IncomingMessage, url: URL): void {
    const refusal = this.refusal(req, url);
    if (!refusal) return;
    this.stats.http_unauthorized++;
    throw refusal;
  }

  /** Why a request may not read what the token guards, if it may not. */
  private refusal(req: IncomingMessage, url: URL): HttpError | undefined {
    if (!this.token) {
      // Without a token we serve loopback only; a foreign Host header means a page on another
      // site reached us through DNS rebinding, so it gets nothing.
      const header = req.headers.host ?? '';
      const host = hostOf(header);
      if (header && (!host || !(isLoopback(host) || host === this.options.config.host.toLowerCase()))) {
        return new HttpError(403, `requests for host "${header}" are refused without a token; open the dashboard as http://127.0.0.1:${this.port}/ or set dashboard.token`);
      }
      return undefined;
    }
    const header = req.headers.authorization;
    const given = header?.startsWith('Bearer ') ? header.slice(7).trim() : url.searchParams.get('token');
    if (given && safeEqual(given, this.token)) return undefined;
    return new HttpError(
      401,
      given ? 'the token is wrong; use the one printed when linewatch started (or dashboard.token)' : 'a token is required: send Authorization: Bearer TOKEN or add ?token=TOKEN (printed when linewatch started, or dashboard.token)',
    );
  }

  private state(): unknown {
    const snapshot = this.view.snapshot();
    const lines = snapshot.lines.map((l) => l.line);
    for (const d of snapshot.devices) if (!lines.includes(d.line)) lines.push(d.line);
    return {
      ts: Date.now(),
      lines: lines.map((line) => lineFigures(line, snapshot.lines.find((l) => l.line === line), snapshot.devices)),
      stations: snapshot.devices.filter((d) => d.type === 'station'),
      devices: snapshot.devices,
      onlineDevices: this.view.onlineDevices(),
    };
  }

  /**
   * Asks the rules engine, which owns alarm state, to apply an operator's action: publishes the
   * request on lw/{line}/alarms/{alarmId}/set and answers 202 with it; the engine's new state
   * comes on the alarm's topic (and to the page over SSE). A request an in-process subscriber
   * refused even after the bus's redeliveries still reached every live subscriber — the rules
   * engine included —, so the answer says only what is missing: `notRecorded`, the reason.
   */
  private async alertAction(req: IncomingMessage, action: AlarmAction): Promise<{ request: AlarmSetPayload; alarm: unknown; notRecorded?: string }> {
    const body = await readJson(req);
    const parsed = alertActionSchema.safeParse(body);
    if (!parsed.success) throw new HttpError(400, formatIssues('body', parsed.error.issues));
    const { id, line, operator, comment, minutes } = parsed.data;
    if (action === 'shelve' && minutes === undefined) throw new HttpError(400, 'body.minutes: shelve needs minutes, for how long (at most a day), e.g. {"id":"…","minutes":30}');
    const alarm = this.view.findAlert(id, line);
    if (!alarm) throw new HttpError(404, `no active alert with id "${id}"${line ? ` on line ${line}` : ''}; it may have been cleared already`);
    const request: AlarmSetPayload = {
      action,
      operator: operator ? `user:${operator}` : DEFAULT_OPERATOR,
      ...(comment ? { comment } : {}),
      ...(minutes !== undefined ? { shelveForMs: Math.round(minutes * 60_000) } : {}),
      ts: Date.now(),
    };
    try {
      await this.options.bus.publish(topics.alarmSet(alarm.line, alarm.id), JSON.stringify(request), DELIVERY.alarmSet);
    } catch (err) {
      if (!(err instanceof MessageRefused)) throw err;
      this.stats.alerts_published++;
      this.stats.alerts_not_recorded++;
      log.warn({ alert: alarm.id, err: err.message }, `the ${action} request was refused by a subscriber (it reached the live ones)`);
      return { request, alarm, notRecorded: err.message };
    }
    this.stats.alerts_published++;
    return { request, alarm };
  }

  private async readHistory(url: URL): Promise<unknown> {
    const parsed = parseHistoryQuery(url.searchParams);
    if (!parsed.ok) throw new HttpError(400, parsed.error);
    if (!this.history) throw new HttpError(503, 'history is not available: no InfluxDB is configured (historian disabled or influxd missing); see docs/historian.md');
    this.stats.history_queries++;
    try {
      const result = await this.history.read(parsed.query);
      this.historyFailedAt = undefined;
      return result;
    } catch (err) {
      this.stats.history_errors++;
      this.historyFailedAt = Date.now();
      throw new HttpError(502, `InfluxDB did not answer the history query: ${(err as Error).message}`);
    }
  }

  /** The downtime Pareto of a range: the line's stops by cause (docs/dashboard.md). */
  private async readDowntimePareto(url: URL): Promise<unknown> {
    const parsed = parseDowntimeQuery(url.searchParams);
    if (!parsed.ok) throw new HttpError(400, parsed.error);
    if (!this.history) throw new HttpError(503, 'history is not available: no InfluxDB is configured (historian disabled or influxd missing); see docs/historian.md');
    this.stats.history_queries++;
    try {
      const result = await readDowntime(this.history, parsed.query);
      this.historyFailedAt = undefined;
      return result;
    } catch (err) {
      this.stats.history_errors++;
      this.historyFailedAt = Date.now();
      throw new HttpError(502, `InfluxDB did not answer the downtime query: ${(err as Error).message}`);
    }
  }

  /**
   * One device in detail (docs/dashboard.md#device-detail): its live view, the historian's totals
   * beside it (`live`), and from InfluxDB its data quality over the range and recent states and
   * readings (`history`; null with `historyError` when InfluxDB is not there or did not answer).
   */
  private async deviceDetail(url: URL): Promise<unknown> {
    const parsed = parseDeviceQuery(url.searchParams);
    if (!parsed.ok) throw new HttpError(400, parsed.error);
    const { line, device } = parsed.query;
    const view = this.view.snapshot().devices.find((candidate) => candidate.line === line && candidate.device === device) ?? null;
    // No `to` given: up to the device's own clock when it is ahead of ours (a simulation at
    // --speedup stamps its events ahead of the wall clock), as the history's relative ranges do.
    const query = !url.searchParams.has('to') && view && view.lastSeen >= parsed.query.to ? { ...parsed.query, to: view.lastSeen + 1 } : parsed.query;
    const liveQuality = this.options.deviceQuality?.(line, device) ?? null;
    let history: DeviceHistory | null = null;
    let historyError: string | undefined;
    if (!this.history) historyError = 'history is not available: no InfluxDB is configured (historian disabled or influxd missing); see docs/historian.md';
    else {
      this.stats.history_queries++;
      try {
        history = await readDeviceHistory(this.history, query);
        this.historyFailedAt = undefined;
      } catch (err) {
        this.stats.history_errors++;
        this.historyFailedAt = Date.now();
        historyError = `InfluxDB did not answer the device query: ${(err as Error).message}`;
      }
    }
    const stored = history !== null && (history.quality.messages > 0 || history.states.length > 0 || history.telemetry.length > 0);
    if (!view && !liveQuality && !stored) throw new HttpError(404, `no device ${line}/${device}: nothing heard from it live${history ? ' and nothing stored in the range' : ''}`);
    return { line, device, view, live: liveQuality, history, ...(historyError ? { historyError } : {}) };
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.end(text);
  }
}

/** Speed, strategy and OEE for one line: the summary first, the line controller's readings as fallback. */
function lineFigures(line: string, summary: LineSummaryView | undefined, devices: ReturnType<LineView['snapshot']>['devices']): unknown {
  const controller = devices.find((d) => d.line === line && d.type === 'line-controller');
  return {
    line,
    speed: summary?.speed ?? controller?.values.speed ?? controller?.values.speedSetpoint ?? null,
    strategy: summary?.strategy ?? null,
    oee: summary?.oee ?? null,
    availability: summary?.availability ?? null,
    performance: summary?.performance ?? null,
    quality: summary?.quality ?? null,
    goodCount: summary?.goodCount ?? null,
    scrapCount: summary?.scrapCount ?? null,
    summaryTs: summary?.ts || null,
  };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `the request body is not valid JSON (${(err as Error).message}); send e.g. {"id":"overheat:A/conv-2"}`);
  }
}
