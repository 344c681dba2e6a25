// `linewatch oee` — the OEE service alone: device events from any MQTT broker → per-line OEE on lw/{line}/summary.
import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { brokerList, positiveInteger } from '../flags.js';
import { connectBus, mqttPassword, runUntilSignal, serviceClientId, withHealthOptions, type HealthFlags } from '../standalone.js';
import { oeeModule } from '../../oee/module.js';

interface OeeFlags extends HealthFlags {
  config?: string;
  broker: string;
  username?: string;
  password?: string;
  clientId?: string;
  publishInterval?: number;
  stateFile?: string;
}

export function registerOee(program: Command): void {
  const command = program
    .command('oee')
    .description('compute each line\'s OEE from the device events on an MQTT broker and publish it on lw/{line}/summary')
    .requiredOption('--broker <url>', 'MQTT broker URL, or several separated by commas (the next one is used when the current one goes away), e.g. mqtt://127.0.0.1:1883', brokerList)
    .option('--username <name>', 'MQTT username (an account with the oee role)')
    .option('--password <password>', 'MQTT password (or set LINEWATCH_MQTT_PASSWORD)')
    .option('--client-id <id>', 'MQTT client id (default: the --username, else linewatch-oee)')
    .option('--publish-interval <ms>', 'how often each line\'s summary is published (default: oee.publishIntervalMs, 10000)', positiveInteger)
    .option('--state-file <file>', 'where the figures are kept across restarts (default: oee.stateFile, .linewatch/oee-state.json)')
    .option('--config <file>', 'linewatch.yaml (its oee: section)');
  withHealthOptions(command, oeeModule).action(async (flags: OeeFlags) => {
      const config = loadConfig(flags.config, { oee: { publishIntervalMs: flags.publishInterval, stateFile: flags.stateFile } });
      // A clean session: the figures go on from oee.stateFile after a restart, and the retained
      // state and status of every device arrive again on subscribing.
      const bus = await connectBus(flags.broker, { username: flags.username, password: mqttPassword(flags.password), clientId: flags.clientId ?? serviceClientId(flags.username, 'linewatch-oee'), clean: true });
      const service = oeeModule.create({ bus, config: config.oee, stateFile: config.oee.stateFile });
      await runUntilSignal({ module: oeeModule, service, bus, flags });
      console.log(`linewatch oee: ${flags.broker} → lw/{line}/summary, oee and downtime every ${config.oee.publishIntervalMs} ms; figures kept in ${config.oee.stateFile ?? 'memory only'}`);
    });
}
