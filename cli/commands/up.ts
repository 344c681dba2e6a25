// `linewatch up` — the whole line in one command: broker, simulated demo line (one device through
// the serial gateway over a socat PTY pair), rules, historian (managed influxd) and dashboard,
// from one config file. Ctrl-C stops everything in reverse order.
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { AddressInUse } from '../../lib/listen.js';
import { logToFile } from '../../lib/log.js';
import { UserError } from '../errors.js';
import { port, positiveNumber } from '../flags.js';
import { namingPortFlag } from '../port-flags.js';
import { onShutdown } from '../shutdown.js';
import { startLine } from '../up/compose.js';
import { lockDataDir } from '../up/data-dir-lock.js';
import { StatusLine } from '../up/status.js';

interface UpFlags {
  config?: string;
  dataDir?: string;
  dashboard: boolean;
  simulate: boolean;
  rules: boolean;
  oee: boolean;
  historian: boolean;
  serial: boolean;
  dashboardHost?: string;
  dashboardPort?: number;
  brokerPort?: number;
  wsPort?: number | boolean;
  influx?: string;
  shadow?: string;
  speedup?: number;
  seed?: number;
  status: boolean;
  sparkplug?: boolean;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new UserError(`"${value}" is not an integer`);
  return n;
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('run the whole line: broker, simulated line, serial gateway, rules, historian, OEE and dashboard')
    .option('--config <file>', 'linewatch.yaml (default: ./linewatch.yaml if it exists)')
    .option('--data-dir <dir>', 'where accounts, state, spools and the managed influxd live (default .linewatch)')
    .option('--no-dashboard', 'no dashboard')
    .option('--no-simulate', 'no simulated line (connect your own devices)')
    .option('--no-rules', 'no rules engine')
    .option('--no-historian', 'no historian and no InfluxDB')
    .option('--no-oee', 'no OEE service (no line summaries on lw/{line}/summary)')
    .option('--no-serial', 'no device through the serial gateway (skip socat)')
    .option('--dashboard-host <address>', 'dashboard bind address (default 127.0.0.1; beyond loopback a token is required)')
    .option('--dashboard-port <port>', 'dashboard port (default 8080; 0 picks a free one)', port)
    .option('--broker-port <port>', 'MQTT port (default 1883; 0 picks a free one)', port)
    .option('--ws-port <port>', 'MQTT over WebSocket port (default 8083)', port)
    .option('--no-ws-port', 'no MQTT-over-WebSocket listener')
    .option('--influx <url>', 'an InfluxDB 1.x API (or 2.x/3.x v1-compatible) base URL instead of a managed influxd')
    .option('--shadow <dir>', 'a shadow rule set run beside the rules on the same events; its commands and alarms go only to lw/_shadow/, never to a device (rules.shadowDir)')
    .option('--speedup <n>', 'simulated seconds per real second (default 1)', positiveNumber)
    .option('--seed <n>', 'simulation seed', integer)
    .option('--no-status', 'no status line')
    .option('--sparkplug', 'the Sparkplug B primary host on, and the simulated line as a Sparkplug edge node (sparkplug.enabled; docs/sparkplug.md)')
    .action(async (flags: UpFlags) => {
      const config = loadConfig(flags.config, {
        dataDir: flags.dataDir,
        broker: { port: flags.brokerPort, wsPort: flags.wsPort === false ? null : flags.wsPort === true ? undefined : flags.wsPort },
        dashboard: { enabled: flags.dashboard ? undefined : false, host: flags.dashboardHost, port: flags.dashboardPort },
        simulate: { enabled: flags.simulate ? undefined : false, speedup: flags.speedup, seed: flags.seed },
        rules: { enabled: flags.rules ? undefined : false, shadowDir: flags.shadow },
        oee: { enabled: flags.oee ? undefined : false },
        historian: { enabled: flags.historian ? undefined : false, influxUrl: flags.influx },
        sparkplug: { enabled: flags.sparkplug ? true : undefined },
      });
      // Before the log file: a second `up` on this data dir refuses with one line, touching nothing.
      const dataDirLock = lockDataDir(config.dataDir);
      // The terminal keeps the lines below and the status line; the log goes to a file.
      const logFile = join(config.dataDir, 'linewatch.log');
      logToFile(logFile);
      console.log(`log: ${logFile} (warnings and errors are shown here too)`);
      let line;
      try {
        line = await startLine(config, { say: (m) => console.log(m), serial: flags.serial, dataDirLock });
      } catch (err) {
        if (err instanceof AddressInUse) throw namingPortFlag(err, { 'broker.port': '--broker-port', 'broker.wsPort': '--ws-port', 'dashboard.port': '--dashboard-port' });
        throw new UserError(`linewatch up could not start: ${(err as Error).message}`);
      }
      const status = new StatusLine(line.status);
      if (flags.status) status.start();
      console.log('linewatch is up; Ctrl-C stops everything.');
      onShutdown(async () => {
        status.stop();
        await line.stop();
      }, 20_000);
      // The terminal closing (SIGHUP) stops the line the same way; otherwise Node would exit at
      // once and leave influxd and socat running.
      process.once('SIGHUP', () => process.kill(process.pid, 'SIGTERM'));
    });
}
