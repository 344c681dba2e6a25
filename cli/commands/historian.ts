// `linewatch historian` — the historian alone: any MQTT broker → InfluxDB (or a managed influxd).
import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { brokerList, positiveInteger } from '../flags.js';
import { connectBus, mqttPassword, runUntilSignal, serviceClientId, withHealthOptions, type HealthFlags } from '../standalone.js';
import { historianModule } from '../../historian/module.js';
import { redactUrl } from '../../lib/influx-url.js';

interface HistorianFlags extends HealthFlags {
  config?: string;
  broker: string;
  username?: string;
  password?: string;
  clientId?: string;
  influx?: string;
  database?: string;
  influxUsername?: string;
  influxPassword?: string;
  dataDir?: string;
  spoolDir?: string;
  batchSize?: number;
  flushInterval?: number;
}

export function registerHistorian(program: Command): void {
  const command = program
    .command('historian')
    .description('store every event, command and alert from an MQTT broker in InfluxDB (nothing lost: QoS 1, persistent session, on-disk spool)')
    .requiredOption('--broker <url>', 'MQTT broker URL, or several separated by commas (the next one is used when the current one goes away), e.g. mqtt://127.0.0.1:1883', brokerList)
    .option('--username <name>', 'MQTT username (an account with the historian role)')
    .option('--password <password>', 'MQTT password (or set LINEWATCH_MQTT_PASSWORD)')
    .option('--client-id <id>', 'MQTT client id of the persistent session; keep it stable across restarts (default: the --username, else linewatch-historian)')
    .option('--influx <url>', 'InfluxDB 1.x API base URL (2.x/3.x: their v1-compatible endpoint); default: historian.influxUrl, else a managed influxd in the data dir')
    .option('--database <name>', 'InfluxDB database (default linewatch)')
    .option('--influx-username <name>', 'InfluxDB user (2.x/3.x: any name)')
    .option('--influx-password <password>', 'InfluxDB password (2.x/3.x: an API token; or set LINEWATCH_INFLUX_PASSWORD)')
    .option('--data-dir <dir>', 'where the spool and a managed influxd live (default .linewatch)')
    .option('--spool-dir <dir>', 'the spool (default <data dir>/historian-spool)')
    .option('--batch-size <n>', 'points per write (default 5000)', positiveInteger)
    .option('--flush-interval <ms>', 'write a partial batch after this long (default 1000)', positiveInteger)
    .option('--config <file>', 'linewatch.yaml (its historian: section and dataDir)');
  withHealthOptions(command, historianModule).action(async (flags: HistorianFlags) => {
      const config = loadConfig(flags.config, {
        dataDir: flags.dataDir,
        historian: {
          influxUrl: flags.influx,
          database: flags.database,
          username: flags.influxUsername,
          password: flags.influxPassword ?? process.env.LINEWATCH_INFLUX_PASSWORD,
          spoolDir: flags.spoolDir,
          batchSize: flags.batchSize,
          flushIntervalMs: flags.flushInterval,
        },
      });
      // A persistent session (clean: false, fixed client id): while the historian is away the
      // broker keeps its QoS 1 messages, and a message is acknowledged only once it is spooled.
      const bus = await connectBus(flags.broker, { username: flags.username, password: mqttPassword(flags.password), clientId: flags.clientId ?? serviceClientId(flags.username, 'linewatch-historian'), clean: false });
      const historian = historianModule.create({ bus, config: config.historian, dataDir: config.dataDir });
      await runUntilSignal({ module: historianModule, service: historian, bus, flags });
      console.log(`linewatch historian: ${flags.broker} → ${historian.influxUrl ? redactUrl(historian.influxUrl) : "(none)"} database ${config.historian.database}`);
    });
}
