// `linewatch sparkplug` — the Sparkplug B primary host alone: Sparkplug edge nodes on an MQTT
// broker → linewatch devices on a linewatch broker (the same one by default), and linewatch
// commands back as DCMD/NCMD metric writes (docs/sparkplug.md).
import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { parseBrokerUrls } from '../../bus/mqtt-connect.js';
import { redactUrl } from '../../lib/influx-url.js';
import { sparkplugModule } from '../../sparkplug/module.js';
import { brokerList } from '../flags.js';
import { connectBus, mqttPassword, runUntilSignal, serviceClientId, withHealthOptions, type HealthFlags } from '../standalone.js';

interface SparkplugFlags extends HealthFlags {
  config?: string;
  broker: string;
  username?: string;
  password?: string;
  clientId?: string;
  hostId?: string;
  sparkplugBroker?: string;
  sparkplugUsername?: string;
  sparkplugPassword?: string;
  rawMetrics?: boolean;
}

export function registerSparkplug(program: Command): void {
  const command = program
    .command('sparkplug')
    .description('the Sparkplug B primary host: Sparkplug edge nodes and devices become linewatch devices, linewatch commands become DCMD/NCMD metric writes')
    .requiredOption('--broker <url>', 'the linewatch MQTT broker (lw/ topics), or several separated by commas (the next one is used when the current one goes away), e.g. mqtt://127.0.0.1:1883', brokerList)
    .option('--username <name>', 'MQTT username on --broker (an account with the sparkplug role; on the embedded broker its name is the host id)')
    .option('--password <password>', 'MQTT password (or set LINEWATCH_MQTT_PASSWORD)')
    .option('--client-id <id>', 'MQTT client id on --broker (default: the --username with :lw, else linewatch-sparkplug)')
    .option('--host-id <id>', 'the host id: its STATE topic spBv1.0/STATE/ID (default: sparkplug.hostId, linewatch)')
    .option('--sparkplug-broker <url>', 'the broker the edge nodes speak to (default: sparkplug.brokerUrl, else the first --broker)')
    .option('--sparkplug-username <name>', 'MQTT username on --sparkplug-broker (default: sparkplug.username, else --username)')
    .option('--sparkplug-password <password>', 'its password (default: sparkplug.password, else --password)')
    .option('--no-raw-metrics', 'do not publish the raw metrics for the historian on lw/_sparkplug/… (sparkplug.rawMetrics)')
    .option('--config <file>', 'linewatch.yaml (its sparkplug: section)');
  withHealthOptions(command, sparkplugModule).action(async (flags: SparkplugFlags) => {
    const config = loadConfig(flags.config, {
      sparkplug: {
        enabled: true,
        hostId: flags.hostId,
        brokerUrl: flags.sparkplugBroker,
        username: flags.sparkplugUsername,
        password: flags.sparkplugPassword,
        rawMetrics: flags.rawMetrics === false ? false : undefined,
      },
    });
    const sp = config.sparkplug;
    const password = mqttPassword(flags.password);
    const [firstBroker] = parseBrokerUrls(flags.broker, '--broker');
    const url = sp.brokerUrl ?? firstBroker ?? flags.broker;
    const username = sp.username ?? flags.username;
    const sparkplugPassword = sp.password ?? password;
    // A clean session on the linewatch side: a command sent while the host is away has expired by
    // the time it is back, and the retained device states come again on subscribing.
    const bus = await connectBus(flags.broker, { username: flags.username, password, clientId: flags.clientId ?? serviceClientId(flags.username, 'linewatch-sparkplug', 'lw'), clean: true });
    // On the embedded broker the sparkplug role may publish only spBv1.0/STATE/{its account}: a host id other than the account name has its STATE refused.
    if (username !== undefined && username !== sp.hostId) console.warn(`linewatch sparkplug: note: host id ${sp.hostId} is not the account name ${username}; on the embedded linewatch broker its STATE would be refused (give --host-id ${username}, or an account named ${sp.hostId})`);
    const host = sparkplugModule.create({ bus, config: sp, mqtt: { url, ...(username !== undefined ? { username } : {}), ...(sparkplugPassword !== undefined ? { password: sparkplugPassword } : {}) } });
    await runUntilSignal({ module: sparkplugModule, service: host, bus, flags, startHint: 'the host needs an account with the sparkplug role named as its host id on the embedded broker: linewatch devices add HOST_ID --role sparkplug' });
    console.log(`linewatch sparkplug: primary host ${sp.hostId} on ${redactUrl(url)} (STATE on spBv1.0/STATE/${sp.hostId}) → linewatch devices on ${redactUrl(flags.broker)}${sp.rawMetrics ? ', raw metrics on lw/_sparkplug/…' : ''}`);
  });
}
