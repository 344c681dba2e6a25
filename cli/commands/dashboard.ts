// `linewatch dashboard` — the dashboard alone, for a line monitored through any MQTT broker,
// with history from InfluxDB when one is given.
import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { brokerList, port } from '../flags.js';
import { connectBus, mqttPassword, runUntilSignal, serviceClientId, withHealthOptions, type HealthFlags } from '../standalone.js';
import { dashboardModule } from '../../dashboard/module.js';
import { redactUrl } from '../../lib/influx-url.js';

interface DashboardFlags extends HealthFlags {
  config?: string;
  broker: string;
  username?: string;
  password?: string;
  influx?: string;
  database?: string;
  host?: string;
  port?: number;
  token?: string;
}

export function registerDashboard(program: Command): void {
  const command = program
    .command('dashboard')
    .description('serve the dashboard (live line view, commands, alerts; history from InfluxDB) for any MQTT broker')
    .requiredOption('--broker <url>', 'MQTT broker URL, or several separated by commas (the next one is used when the current one goes away), e.g. mqtt://127.0.0.1:1883', brokerList)
    .option('--username <name>', 'MQTT username (an account with the dashboard role)')
    .option('--password <password>', 'MQTT password (or set LINEWATCH_MQTT_PASSWORD)')
    .option('--influx <url>', 'InfluxDB 1.x API base URL for the history charts (default: historian.influxUrl; without one, history answers 503)')
    .option('--database <name>', 'InfluxDB database (default linewatch)')
    .option('--host <address>', 'address to listen on (default 127.0.0.1; beyond loopback a token is required)')
    .option('--port <port>', 'port to listen on (default 8080; 0 picks a free one)', port)
    .option('--token <token>', 'token the page and API require (generated when bound beyond loopback without one)')
    .option('--config <file>', 'linewatch.yaml (its dashboard: and historian: sections)');
  withHealthOptions(command, dashboardModule).action(async (flags: DashboardFlags) => {
      const config = loadConfig(flags.config, {
        dashboard: { host: flags.host, port: flags.port, token: flags.token },
        historian: { influxUrl: flags.influx, database: flags.database },
      });
      const bus = await connectBus(flags.broker, { username: flags.username, password: mqttPassword(flags.password), clientId: serviceClientId(flags.username, `linewatch-dashboard-${process.pid}`, String(process.pid)) });
      const { influxUrl, database, username, password, periodRetentionPolicy } = config.historian;
      const dashboard = dashboardModule.create({ bus, config: config.dashboard, influx: influxUrl ? { url: influxUrl, database, username, password, periodRetentionPolicy } : null });
      await runUntilSignal({ module: dashboardModule, service: dashboard, bus, flags, portFlags: { 'dashboard.port': '--port' } });
      const link = dashboard.tokenGenerated ? `${dashboard.url}/?token=${dashboard.token}` : `${dashboard.url}/`;
      console.log(`linewatch dashboard: ${link} — broker ${flags.broker}; history ${influxUrl ? `${redactUrl(influxUrl)} database ${database}` : 'off (no --influx)'}`);
    });
}
