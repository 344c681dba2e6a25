// `linewatch simulate` — runs a simulated production line against an MQTT broker.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { brokerList } from '../flags.js';
import { loadConfig } from '../../config/load.js';
import { logger } from '../../lib/log.js';
import { type LineSimulator, loadDemoScenario, loadScenarioFile, type Credentials, type ModbusTcpDeviceConfig, type SerialDeviceConfig } from '../../simulators/index.js';
import { UserError } from '../errors.js';
import { mqttPassword, runUntilSignal, withHealthOptions, type HealthFlags } from '../standalone.js';
import { simulateModule } from '../../simulators/module.js';

const log = logger('simulate');

interface SimulateFlags extends HealthFlags {
  config?: string;
  broker: string;
  line?: string;
  scenario?: string;
  seed?: number;
  devices?: number;
  rate?: number;
  speedup?: number;
  serial: string[];
  modbusTcp: string[];
  serialCodec: 'ndjson' | 'text' | 'modbus';
  baud: number;
  mode?: 'auto' | 'per-device' | 'shared';
  username?: string;
  password?: string;
  devicePassword?: string;
  credentials?: string;
  sparkplug?: boolean;
}

function positive(name: string, integer = false) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new UserError(`--${name} "${value}" must be a positive ${integer ? 'integer' : 'number'}`);
    return n;
  };
}

/** `--serial conv-2=/dev/pts/5` or `--serial /dev/pts/5` (then conv-1 is the serial device). */
export function parseSerialFlag(value: string, codec: 'ndjson' | 'text' | 'modbus', baudRate: number): SerialDeviceConfig {
  const eq = value.indexOf('=');
  const device = eq > 0 ? value.slice(0, eq) : 'conv-1';
  const path = eq > 0 ? value.slice(eq + 1) : value;
  if (!path) throw new UserError(`--serial "${value}": expected PATH or DEVICE=PATH, e.g. --serial conv-2=/dev/ttyUSB0`);
  return { device, path, codec, baudRate };
}

/** `--modbus-tcp [DEVICE=][HOST:]PORT[/UNIT]`, e.g. `1502` (conv-1, 127.0.0.1, unit 1) or `st-3=0.0.0.0:1502/4`. */
export function parseModbusTcpFlag(value: string): ModbusTcpDeviceConfig {
  const match = /^(?:([A-Za-z0-9_-]{1,64})=)?(?:([^=/]+):)?(\d{1,5})(?:\/(\d{1,3}))?$/.exec(value);
  const port = Number(match?.[3]);
  const unitId = match?.[4] === undefined ? 1 : Number(match[4]);
  if (!match || port < 1 || port > 65_535 || unitId < 1 || unitId > 247) {
    throw new UserError(`--modbus-tcp "${value}": expected [DEVICE=][HOST:]PORT[/UNIT] with PORT 1–65535 and UNIT 1–247, e.g. --modbus-tcp conv-2=127.0.0.1:1502/3`);
  }
  return { device: match[1] ?? 'conv-1', port, unitId, ...(match[2] ? { host: match[2].replace(/^\[(.*)\]$/, '$1') } : {}) };
}

function readCredentialsFile(file: string): Record<string, string> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch (err) {
    throw new UserError(`--credentials ${file}: ${(err as Error).message}; expected a JSON object {"LINE/DEVICE": "password", …} such as .linewatch/sim-credentials.json`);
  }
}

export function registerSimulate(program: Command): void {
  const command = program
    .command('simulate')
    .description('run a simulated production line (controller, conveyors, stations, sensors) against an MQTT broker')
    .option('--config <file>', 'linewatch.yaml (its simulate: section)')
    .option('--broker <url>', 'MQTT broker URL, or several separated by commas (the next one is used when the current one goes away)', brokerList, 'mqtt://127.0.0.1:1883')
    .option('--line <id>', 'line id (default A)')
    .option('--scenario <file>', 'scenario YAML (default: the built-in demo)')
    .option('--seed <n>', 'PRNG seed: same seed, same run (default 1)', positive('seed', true))
    .option('--devices <n>', "total device count (default: the scenario's layout)", positive('devices', true))
    .option('--rate <hz>', 'telemetry per device per second (default 1)', positive('rate'))
    .option('--speedup <x>', 'simulated seconds per real second (default 1)', positive('speedup'))
    .option('--serial <[device=]path>', 'a device that writes frames to this serial port instead of MQTT (repeatable; bare PATH = conv-1)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--modbus-tcp <[device=][host:]port[/unit]>', 'a device that answers Modbus TCP polls on this port (default host 127.0.0.1, unit 1; repeatable, devices on one port need their own unit ids; bare PORT = conv-1)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--serial-codec <codec>', 'codec of --serial devices: text, ndjson or modbus (a Modbus RTU slave, unit id 1)', 'text')
    .option('--baud <n>', 'baud rate of --serial devices', positive('baud', true), 9600)
    .option('--mode <mode>', 'MQTT connections: auto, per-device or shared (default auto: shared above 200 devices)')
    .option('--username <user>', 'shared mode: a gateway-role account; per-device mode: used for every device when no device credentials are given')
    .option('--password <password>', 'password for --username (or set LINEWATCH_MQTT_PASSWORD)')
    .option('--device-password <password>', 'per-device mode: the password of every LINE/DEVICE account (or set LINEWATCH_DEVICE_PASSWORD)')
    .option('--sparkplug', 'the line as one Sparkplug B edge node LINE/edge (group = line; --username LINE/edge, a sparkplug-edge account): births, DDATA by alias, NDEATH will, rebirth on request (docs/sparkplug.md)')
    .option('--credentials <file>', 'per-device mode: JSON {"LINE/DEVICE": "password"} (e.g. .linewatch/sim-credentials.json)');
  withHealthOptions(command, simulateModule).action(async (flags: SimulateFlags) => {
      if (!['text', 'ndjson', 'modbus'].includes(flags.serialCodec)) throw new UserError(`--serial-codec "${flags.serialCodec}": use text, ndjson or modbus`);
      if (flags.mode && !['auto', 'per-device', 'shared'].includes(flags.mode)) throw new UserError(`--mode "${flags.mode}": use auto, per-device or shared`);
      const config = loadConfig(flags.config, {
        simulate: { line: flags.line, seed: flags.seed, scenario: flags.scenario, rateHz: flags.rate, speedup: flags.speedup, devices: flags.devices, mqttMode: flags.mode },
      }).simulate;
      const scenario = config.scenario ? loadScenarioFile(config.scenario) : loadDemoScenario();
      const password = mqttPassword(flags.password);
      const account: Credentials | undefined = flags.username ? { username: flags.username, password: password ?? '' } : undefined;
      const devicePassword = flags.devicePassword ?? process.env.LINEWATCH_DEVICE_PASSWORD;
      const known = flags.credentials ? readCredentialsFile(flags.credentials) : undefined;
      const credentials = (line: string, device: string): Credentials | undefined => {
        const username = `${line}/${device}`;
        if (known?.[username]) return { username, password: known[username] };
        if (devicePassword) return { username, password: devicePassword };
        return account;
      };
      let sim: LineSimulator;
      try {
        sim = simulateModule.create({
          line: config.line,
          seed: config.seed,
          scenario,
          ...(config.devices !== null ? { devices: config.devices } : {}),
          rateHz: config.rateHz,
          speedup: config.speedup,
          mqtt: { url: flags.broker, mode: flags.sparkplug ? 'sparkplug' : config.mqttMode, credentials, ...(account ? { sharedAccount: account } : {}) },
          serialDevices: flags.serial.map((s) => parseSerialFlag(s, flags.serialCodec, flags.baud)),
          modbusTcpDevices: flags.modbusTcp.map(parseModbusTcpFlag),
        });
      } catch (err) {
        throw new UserError((err as Error).message);
      }
      const timer = setInterval(() => log.info(sim.counters(), 'simulator counters'), 10_000);
      timer.unref();
      await runUntilSignal({ module: simulateModule, service: sim, flags, startHint: 'Check --broker and the credentials (see docs/simulators.md#accounts)', beforeStop: () => clearInterval(timer) });
      const c = sim.counters();
      console.log(`linewatch simulate: line ${config.line}, ${c.devices} devices over ${c.connections} connection(s) to ${flags.broker}, scenario ${scenario.name}, seed ${config.seed}, ${config.rateHz} Hz, ×${config.speedup}`);
    });
}
