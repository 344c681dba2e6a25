// The `linewatch` command. Each subcommand lives in cli/commands/<name>.ts and registers itself.
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/load.js';
import { registerBroker } from './commands/broker.js';
import { registerDashboard } from './commands/dashboard.js';
import { registerDevices } from './commands/devices.js';
import { registerGateway } from './commands/gateway.js';
import { registerHistorian } from './commands/historian.js';
import { registerOee } from './commands/oee.js';
import { registerPorts } from './commands/ports.js';
import { registerRules } from './commands/rules.js';
import { registerSimulate } from './commands/simulate.js';
import { registerSparkplug } from './commands/sparkplug.js';
import { registerUp } from './commands/up.js';

const program = new Command('linewatch')
  .description('IoT production-line event monitor: MQTT broker, serial gateway, rules, InfluxDB historian, dashboard')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)');

for (const register of [registerUp, registerBroker, registerDevices, registerSimulate, registerGateway, registerPorts, registerRules, registerHistorian, registerOee, registerSparkplug, registerDashboard]) {
  register(program);
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  // Expected, user-facing errors print one clear line (and exit with their own code if they have
  // one: 2 for an address in use); anything else keeps its stack for a bug report.
  if (err instanceof ConfigError || (err as { userFacing?: boolean }).userFacing) {
    console.error(`linewatch: ${(err as Error).message}`);
    process.exit((err as { exitCode?: number }).exitCode ?? 1);
  }
  console.error(err);
  process.exit(1);
}
