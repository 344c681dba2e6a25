// lib/service-http.ts and lib/metrics.ts over real HTTP on a free loopback port: /healthz is the
// worst health of the process's services (503 only when one is down), /metrics types each key
// as a counter or a gauge as the service declares.
import { afterEach, describe, expect, it } from 'vitest';
import { ServiceEndpoints, type HealthSource } from '../../lib/service-http.js';
import { HEALTHY, healthFrom, type Health } from '../../lib/service.js';

class Source implements HealthSource {
  current: Health = HEALTHY;
  values = { received: 3, queue_depth: 7 };
  readonly gauges = new Set(['queue_depth']);
  constructor(readonly name: string) {}
  counters() {
    return this.values;
  }
  health(): Health {
    return this.current;
  }
}

let endpoints: ServiceEndpoints | undefined;
afterEach(async () => endpoints?.stop());

async function serve(sources: HealthSource[]): Promise<string> {
  endpoints = new ServiceEndpoints({ host: '127.0.0.1', port: 0, sources: () => sources });
  await endpoints.start();
  return endpoints.url;
}

describe('ServiceEndpoints', () => {
  it('answers /healthz with the worst health: 200 when ok or degraded, 503 when a service is down, every reason named', async () => {
    const historian = new Source('historian');
    const rules = new Source('rules');
    const url = await serve([historian, rules]);
    let res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', reasons: [], services: { historian: { status: 'ok' }, rules: { status: 'ok' } } });

    historian.current = healthFrom([{ failed: true, status: 'degraded', reason: 'InfluxDB unreachable; the spool holds 12 events' }]);
    res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'degraded', reasons: ['historian: InfluxDB unreachable; the spool holds 12 events'] });

    rules.current = healthFrom([{ failed: true, status: 'down', reason: 'not connected to the broker' }]);
    res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(503);
    const report = (await res.json()) as { status: string; reasons: string[]; services: Record<string, Health> };
    expect(report.status).toBe('down');
    expect(report.reasons).toEqual(['historian: InfluxDB unreachable; the spool holds 12 events', 'rules: not connected to the broker']);
    expect(report.services.rules?.status).toBe('down');
  });

  it('exports counters as Prometheus counters and declared gauges as gauges, per service, read at scrape time', async () => {
    const historian = new Source('historian');
    const url = await serve([historian]);
    let text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/^# TYPE linewatch_received counter$/m);
    expect(text).toMatch(/^linewatch_received\{service="historian"\} 3$/m);
    expect(text).toMatch(/^# TYPE linewatch_queue_depth gauge$/m);
    expect(text).toMatch(/^linewatch_queue_depth\{service="historian"\} 7$/m);
    expect(text).toMatch(/^linewatch_process_cpu_user_seconds_total /m);
    historian.values = { received: 5, queue_depth: 0 };
    text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/^linewatch_received\{service="historian"\} 5$/m);
    expect(text).toMatch(/^linewatch_queue_depth\{service="historian"\} 0$/m);
  });

  it('answers 404 elsewhere and refuses methods other than GET', async () => {
    const url = await serve([]);
    expect((await fetch(`${url}/api/state`)).status).toBe(404);
    expect((await fetch(`${url}/healthz`, { method: 'POST' })).status).toBe(405);
  });
});
