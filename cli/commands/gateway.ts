// `linewatch gateway` — bridges serial ports to an MQTT broker.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { brokerList } from '../flags.js';
import { loadConfig } from '../../config/load.js';
import { DEVICE_TYPES, type DeviceType } from '../../contracts/schemas.js';
import { CODECS, type GatewayPortConfig } from '../../gateway/config.js';
import { logger } from '../../lib/log.js';
import { UserError } from '../errors.js';
import { connectBus, mqttPassword, runUntilSignal, serviceClientId, withHealthOptions, type HealthFlags } from '../standalone.js';
import { gatewayModule } from '../../gateway/module.js';

const log = logger('gateway');

interface GatewayFlags extends HealthFlags {
  config?: string;
  broker: string;
  port?: string;
  device?: string;
  type?: string;
  codec: string;
  baud: number;
  spoolDir?: string;
  username?: string;
  password?: string;
}

function isDeviceType(value: string): value is DeviceType {
  return (DEVICE_TYPES as readonly string[]).includes(value);
}

export function registerGateway(program: Command): void {
  const command = program
    .command('gateway')
    .description('bridge serial devices (ndjson, NMEA-style text, Modbus RTU) and Modbus TCP devices to MQTT, with store-and-forward on disk')
    .option('--config <file>', 'linewatch.yaml (its gateway: section; Modbus register maps live there)')
    .option('--broker <url>', 'MQTT broker URL, or several separated by commas (the next one is used when the current one goes away)', brokerList, 'mqtt://127.0.0.1:1883')
    .option('--port <path>', 'one serial port, e.g. /dev/ttyUSB0 (otherwise gateway.ports from the config)')
    .option('--device <LINE/DEVICE>', 'the device --port speaks for')
    .option('--type <type>', `the device's type, stamped into its messages for frames that carry none (so type: rules match it): ${DEVICE_TYPES.join(', ')}`)
    .option('--codec <codec>', `codec of --port: ${CODECS.filter((c) => c !== 'modbus').join(' or ')} (Modbus needs a register map in the config)`, 'ndjson')
    .option('--baud <n>', 'baud rate of --port', (v: string) => Number(v), 9600)
    .option('--spool-dir <dir>', 'store-and-forward directory (default .linewatch/gateway-spool)')
    .option('--username <user>', 'MQTT account with the gateway role')
    .option('--password <password>', 'MQTT password (or set LINEWATCH_MQTT_PASSWORD)');
  withHealthOptions(command, gatewayModule).action(async (flags: GatewayFlags) => {
      const config = loadConfig(flags.config, { gateway: { spoolDir: flags.spoolDir } });
      let ports: GatewayPortConfig[] = config.gateway.ports;
      if (flags.port || flags.device) {
        if (!flags.port || !flags.device) throw new UserError('--port and --device go together, e.g. --port /dev/ttyUSB0 --device A/press-1');
        if (flags.type !== undefined && !isDeviceType(flags.type)) throw new UserError(`--type must be one of ${DEVICE_TYPES.join(', ')}, not "${flags.type}"`);
        if (flags.codec === 'modbus') throw new UserError('Modbus (RTU or TCP) needs a register map: describe the port under gateway.ports in linewatch.yaml (see docs/gateway.md#modbus-rtu-and-modbus-tcp-codec-modbus)');
        if (!Number.isInteger(flags.baud) || flags.baud <= 0) throw new UserError(`--baud must be a positive integer`);
        ports = [{ path: flags.port, device: flags.device, codec: flags.codec as 'ndjson' | 'text', baudRate: flags.baud, ...(flags.type !== undefined ? { type: flags.type as DeviceType } : {}) }];
      }
      if (ports.length === 0) throw new UserError('no serial ports: pass --port PATH --device LINE/DEVICE, or list them (and Modbus TCP devices) under gateway.ports in linewatch.yaml; `linewatch ports` shows what is plugged in');
      const bus = await connectBus(
        flags.broker,
        { clientId: serviceClientId(flags.username, `linewatch-gateway-${process.pid}`, String(process.pid)), ...(flags.username ? { username: flags.username, password: mqttPassword(flags.password) } : {}) },
        'the gateway needs a broker to start (later outages are bridged by its spool)',
      );
      const gateway = gatewayModule.create({ bus, ports, spoolDir: resolve(config.gateway.spoolDir), spoolMaxBytes: config.gateway.spoolMaxBytes, maxInFlight: config.gateway.maxInFlight });
      await runUntilSignal({ module: gatewayModule, service: gateway, bus, flags, beforeStop: () => clearInterval(timer) });
      const timer = setInterval(() => log.info(gateway.counters(), 'gateway counters'), 10_000);
      timer.unref();
      console.log(`linewatch gateway: ${gateway.describePorts().join(', ')}; broker ${flags.broker}; spool ${resolve(config.gateway.spoolDir)}`);

    });
}
