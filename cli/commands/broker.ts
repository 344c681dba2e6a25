// `linewatch broker` — runs the embedded MQTT broker alone.
import { Option, type Command } from 'commander';
import { listAccounts } from '../../broker/accounts.js';
import type { BrokerConfig } from '../../broker/config.js';
import { brokerModule } from '../../broker/module.js';
import { roleGrants } from '../../config/services.js';
import { loadConfig } from '../../config/load.js';
import { UserError } from '../errors.js';
import { port } from '../flags.js';
import { runUntilSignal, withHealthOptions, type HealthFlags } from '../standalone.js';

interface BrokerFlags extends HealthFlags {
  config?: string;
  host?: string;
  port?: number;
  wsPort?: number | boolean; // false: --no-ws-port; true: commander's default when neither flag is given
  open?: boolean;
  devicesFile?: string;
  tlsPort?: number;
  tlsCert?: string;
  tlsKey?: string;
  dataDir?: string;
  persistence?: BrokerConfig['persistence'];
  redis?: string;
  cluster?: string;
}

export function registerBroker(program: Command): void {
  const command = program
    .command('broker')
    .description('run the MQTT broker (TCP, WebSocket at /mqtt, optional TLS) with authentication and ACL')
    .option('--config <file>', 'linewatch.yaml (its broker: section)')
    .option('--host <address>', 'address to bind (default 127.0.0.1; 0.0.0.0 for every interface)')
    .option('--port <port>', 'MQTT over TCP (default 1883)', port)
    .option('--ws-port <port>', 'MQTT over WebSocket, path /mqtt (default 8083)', port)
    .option('--no-ws-port', 'no WebSocket listener')
    .option('--open', 'DEVELOPMENT ONLY: no authentication, no ACL, any topic')
    .option('--devices-file <file>', 'accounts file (default .linewatch/devices.json)')
    .option('--tls-port <port>', 'MQTT over TLS (default 8883 when --tls-cert/--tls-key are given)', port)
    .option('--tls-cert <file>', 'PEM certificate for the TLS listener')
    .option('--tls-key <file>', 'PEM private key for the TLS listener')
    .option('--data-dir <dir>', 'where the broker keeps its store: the disk store in <dir>/broker, a managed redis-server in <dir>/redis (default .linewatch)')
    .addOption(new Option('--persistence <store>', 'where sessions, retained and queued messages live: disk, memory or redis (default disk)').choices(['disk', 'memory', 'redis']))
    .option('--redis <url>', 'the Redis of --persistence redis (default: a managed redis-server under the data dir)')
    .option('--cluster <url>', 'redis://HOST:PORT shared by several brokers that behave as one (sessions on that Redis too)');
  withHealthOptions(command, brokerModule).action(async (flags: BrokerFlags) => {
      if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
        throw new UserError('TLS needs both --tls-cert and --tls-key');
      }
      if (flags.tlsPort !== undefined && flags.tlsCert === undefined) {
        throw new UserError('--tls-port needs --tls-cert and --tls-key (PEM files) to serve TLS');
      }
      const tls = flags.tlsCert ? { port: flags.tlsPort, cert: flags.tlsCert, key: flags.tlsKey } : undefined;
      const loaded = loadConfig(flags.config, {
        dataDir: flags.dataDir,
        broker: {
          host: flags.host,
          port: flags.port,
          wsPort: flags.wsPort === false ? null : flags.wsPort === true ? undefined : flags.wsPort,
          open: flags.open,
          devicesFile: flags.devicesFile,
          tls,
          persistence: flags.persistence,
          redis: flags.redis !== undefined ? { url: flags.redis } : undefined,
          cluster: flags.cluster,
        },
      });
      const config = loaded.broker;
      if (config.open) {
        console.error('!!! OPEN MODE: no authentication, no ACL — anyone who can reach this broker can publish and subscribe to anything. Development only. !!!');
      } else if (listAccounts(config.devicesFile).length === 0) {
        console.error(`note: ${config.devicesFile} has no accounts, so every client will be refused; add one with \`linewatch devices add LINE/DEVICE\` (or run with --open for development)`);
      }
      const broker = brokerModule.create({ config, roles: roleGrants(), dataDir: loaded.dataDir });
      await runUntilSignal({ module: brokerModule, service: broker, flags, portFlags: { 'broker.port': '--port', 'broker.wsPort': '--ws-port', 'broker.tls.port': '--tls-port' } });
      const { mqtt, ws, tls: tlsPort } = broker.ports;
      console.log(`linewatch broker: mqtt://${config.host}:${mqtt}${ws !== null ? `  ws://${config.host}:${ws}/mqtt` : ''}${tlsPort !== null ? `  mqtts://${config.host}:${tlsPort}` : ''}`);
    });
}
