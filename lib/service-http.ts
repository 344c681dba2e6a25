// /healthz and /metrics of a process: the dashboard's HTTP server serves them in `linewatch up`,
// and every standalone service gets this small server (cli/standalone.ts), on loopback by default.
//
//   GET /healthz  200 {"status":"ok"|"degraded", …} or 503 {"status":"down", …}: the worst health
//                 of the process's services, each service's own health and reasons beside it
//   GET /metrics  the Prometheus text format (lib/metrics.ts)
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenOn } from './listen.js';
import { Metrics, type MetricSource } from './metrics.js';
import { HEALTHY, worstHealth, type Health, type HealthStatus, type ServiceInfo } from './service.js';

export interface HealthSource extends MetricSource {
  health?(): Health;
}

export interface HealthReport {
  status: HealthStatus;
  reasons: readonly string[];
  /** Each service's health, with its info (Service.info: e.g. the lines a worker owns) when it has one. */
  services: Record<string, Health & { info?: ServiceInfo }>;
  uptimeMs: number;
}

/** The worst health of `sources`, each one's beside it; a service without health() counts as ok. */
export function healthReport(sources: readonly HealthSource[], startedAt: number): HealthReport {
  const services: HealthReport['services'] = {};
  for (const source of sources) {
    const health = source.health?.() ?? HEALTHY;
    const info = source.info?.();
    services[source.name] = info ? { ...health, info } : health;
  }
  const overall = worstHealth(Object.entries(services).map(([name, health]) => ({ status: health.status, reasons: health.reasons.map((reason) => `${name}: ${reason}`) })));
  return { status: overall.status, reasons: overall.reasons, services, uptimeMs: Date.now() - startedAt };
}

/** 503 only when down: a degraded service still does its job (a load balancer keeps it). */
export function healthHttpStatus(report: HealthReport): number {
  return report.status === 'down' ? 503 : 200;
}

export interface ServiceEndpointsOptions {
  host: string;
  /** 0 picks a free port (see `port` after start). */
  port: number;
  sources: () => readonly HealthSource[];
}

export class ServiceEndpoints {
  private readonly server: Server;
  private readonly metrics: Metrics;
  private readonly startedAt = Date.now();

  constructor(private readonly options: ServiceEndpointsOptions) {
    this.metrics = new Metrics(options.sources);
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  /** Listens; a port in use rejects with AddressInUse (lib/listen.ts). */
  async start(): Promise<void> {
    await listenOn(this.server, { host: this.options.host, port: this.options.port, what: '/healthz and /metrics', setting: 'the port of /healthz and /metrics' });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `http://${host}:${this.port}`;
  }

  async stop(): Promise<void> {
    if (!this.server.listening) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.send(res, 405, 'text/plain', 'only GET\n');
    try {
      if (path === '/healthz') {
        const report = healthReport(this.options.sources(), this.startedAt);
        return this.send(res, healthHttpStatus(report), 'application/json', JSON.stringify(report));
      }
      if (path === '/metrics') return this.send(res, 200, this.metrics.contentType, await this.metrics.render());
      return this.send(res, 404, 'text/plain', 'not found: this server has /healthz and /metrics\n');
    } catch (err) {
      return this.send(res, 500, 'text/plain', `${(err as Error).message}\n`);
    }
  }

  private send(res: ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  }
}
