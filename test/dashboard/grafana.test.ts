// The Grafana provisioning matches the historian's schema: every query of grafana/dashboards/
// linewatch.json runs without error on a real influxd holding points the historian's own
// converter made from real payloads, written as the historian writes them (its database setup,
// the period rows in their own retention policy), and the panels that should show data do.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historianConfigSchema } from '../../historian/config.js';
import { zeroCounts } from '../../historian/data-quality.js';
import { InfluxClient, setupDatabase } from '../../historian/influx.js';
import { qualityLine, toPoint } from '../../historian/points.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dashboard = JSON.parse(readFileSync(join(ROOT, 'grafana/dashboards/linewatch.json'), 'utf8')) as {
  templating: { list: Array<{ query: string }> };
  panels: Array<{ title: string; datasource: { uid: string }; targets: Array<{ query: string }> }>;
};

let influx: TestInflux;

beforeAll(async () => {
  influx = await startTestInflux();
  const config = historianConfigSchema.parse({ influxUrl: influx.url });
  const client = new InfluxClient({ url: influx.url, database: config.database, periodRetentionPolicy: config.periodRetentionPolicy });
  await setupDatabase(client.admin, config);
  const now = Date.now();
  /** The hour of a minute ago: within the last hour whatever the minute now. */
  const HOUR = Math.max(now - 3_000_000, Math.floor((now - 60_000) / 3_600_000) * 3_600_000);
  const messages: Array<[string, unknown]> = [
    ['lw/A/conv-2/telemetry', { ts: now - 5000, seq: 1, values: { speed: 40, motorTemp: 81.5 }, type: 'conveyor' }],
    ['lw/A/line-ctl/telemetry', { ts: now - 90_000, seq: 1, values: { goodCount: 10 }, type: 'line-controller' }],
    ['lw/A/line-ctl/telemetry', { ts: now - 5000, seq: 2, values: { goodCount: 25 }, type: 'line-controller' }],
    ['lw/A/st-3/state', { ts: now - 4000, seq: 1, state: 'FAULT', reason: 'jam', type: 'station' }],
    ['lw/A/st-3/status', { ts: now - 6000, status: 'online', type: 'station' }],
    ['lw/A/line-ctl/cmd', { id: 'c-1', action: 'set_speed', params: { speed: 15 }, origin: 'rule:conveyor-overheat', ts: now - 3000, expiresAt: now + 7000 }],
    ['lw/A/line-ctl/cmd/ack', { id: 'c-1', result: 'done', ts: now - 2900 }],
    ['lw/A/alerts', { id: 'conveyor-overheat:A/conv-2', rule: 'conveyor-overheat', severity: 'warning', state: 'raised', message: 'hot', device: 'conv-2', ts: now - 3000 }],
    ['lw/A/summary', { ts: now - 1000, speed: 15, strategy: 'max-throughput', oee: 0.7, availability: 0.9, performance: 0.8, quality: 0.97 }],
    ['lw/A/oee', { ts: now - 1000, period: 'hour', scope: 'line', start: HOUR, end: HOUR + 3_600_000, complete: false, oee: 0.7, availability: 0.9, performance: 0.8, quality: 0.97, plannedMs: 60_000, runMs: 54_000, downMs: { FAULT: 6000 }, microStops: 0, microStopMs: 0, plannedStopMs: 0, unknownMs: 0, goodCount: 20, scrapCount: 1 }],
    ['lw/A/oee', { ts: now - 1000, period: 'shift', scope: 'line', shift: 'early', start: now - 600_000, end: now + 3_600_000, complete: false, oee: 0.7, availability: 0.9, performance: 0.8, quality: 0.97, plannedMs: 60_000, runMs: 54_000, downMs: { FAULT: 6000 }, microStops: 0, microStopMs: 0, plannedStopMs: 0, unknownMs: 0, goodCount: 20, scrapCount: 1 }],
    ['lw/A/downtime', { ts: now - 1000, scope: 'line', device: 'st-3', state: 'FAULT', reason: 'jam', start: now - 4000, end: now - 1000, durationMs: 3000, plannedMs: 0, micro: false, open: true }],
    ['lw/A/downtime', { ts: now - 1000, scope: 'device', device: 'st-3', state: 'FAULT', reason: 'jam', start: now - 4000, end: now - 1000, durationMs: 3000, plannedMs: 0, micro: false, open: true }],
  ];
  const lines = messages.map(([topic, payload]) => {
    const point = toPoint(topic, JSON.stringify(payload));
    if (!point.ok) throw new Error(point.error);
    return point.line;
  });
  lines.push(qualityLine({ line: 'A', device: 'st-3', totals: zeroCounts(), delta: { ...zeroCounts(), messages: 40, gaps: 1, skipped: 2 } }, now - 60_000, 60_000, 1));
  await client.writeLines(lines);
  client.close();
});

afterAll(async () => {
  await influx?.stop();
});

/** Grafana's macros, as Grafana would expand them for "last hour" and line A. */
function expand(q: string): string {
  return q.replaceAll('$timeFilter', 'time > now() - 1h').replaceAll('$line', 'A').replaceAll('$__interval', '10s');
}

describe('Grafana provisioning', () => {
  it('names the provisioned datasource in every panel', () => {
    const ds = parse(readFileSync(join(ROOT, 'grafana/provisioning/datasources/linewatch.yaml'), 'utf8')) as { datasources: Array<{ uid: string; type: string; jsonData: { dbName: string } }> };
    expect(ds.datasources[0]).toMatchObject({ uid: 'linewatch-influxdb', type: 'influxdb', jsonData: { dbName: 'linewatch' } });
    for (const panel of dashboard.panels) expect(panel.datasource.uid, panel.title).toBe('linewatch-influxdb');
  });

  it('runs every query against the historian schema, and the panels show data', async () => {
    const variable = await influx.query(expand(dashboard.templating.list[0]!.query), 'linewatch');
    expect(variable[0]?.error).toBeUndefined();
    expect(JSON.stringify(variable[0]?.series)).toContain('"A"');
    for (const panel of dashboard.panels) {
      const [result] = await influx.query(expand(panel.targets[0]!.query), 'linewatch');
      expect(result?.error, panel.title).toBeUndefined();
      const rows = (result?.series ?? []).reduce((n, s) => n + s.values.filter((v) => v.slice(1).some((x) => x !== null)).length, 0);
      expect(rows, panel.title).toBeGreaterThan(0);
    }
  });
});
