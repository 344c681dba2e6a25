// LineSimulator: the line model ticked by a scheduler (real time × speedup) and wired to
// transports — MQTT (one connection per device, or a few shared ones), an in-process Bus, or
// serial ports for legacy devices.
import type { Bus } from '../bus/index.js';
import type { CommandPayload, DeviceType } from '../contracts/index.js';
import { logger } from '../lib/log.js';
import { HEALTHY, type Counters, type Health, type Service } from '../lib/service.js';
import { LineModel, layoutForDeviceCount, type SimEvent } from './model.js';
import { loadDemoScenario, type Layout, type Scenario } from './scenario.js';
import { BusTransport, ModbusTcpDevices, PerDeviceMqtt, SerialDevices, SharedMqtt, SparkplugEdge, type Credentials, type DeviceTransport, type ModbusTcpDeviceConfig, type SerialDeviceConfig } from './transports/index.js';

export { LineModel, layoutForDeviceCount, CONTROLLER_ID, CONVEYOR_MAX_SPEED, TRIP_TEMPERATURE, type SimEvent } from './model.js';
export { loadDemoScenario, loadScenarioFile, parseScenario, parseScenarioYaml, DEMO_SCENARIO_FILE, ScenarioError, type Scenario, type Layout } from './scenario.js';
export type { Credentials, ModbusTcpDeviceConfig, SerialDeviceConfig } from './transports/index.js';
export { SIMULATED_EDGE } from './transports/index.js';
export { modbusMapFor, STATE_REGISTER, COMMAND_REGISTERS } from './modbus-device.js';

const log = logger('simulate');

/** Above this many devices `mqtt.mode: 'auto'` shares connections instead of opening one per device. */
export const PER_DEVICE_LIMIT = 200;
/** Disconnected devices named in a health reason; beyond these, a count. */
const NAMED_IN_HEALTH = 5;
/** The keys of counters() that are levels, not totals. */
const SIMULATOR_GAUGES: ReadonlySet<string> = new Set(['devices', 'devices_connected']);
/** Catch-up steps per timer call: a large speedup runs in slices instead of blocking the event loop. */
const MAX_STEPS_PER_TIMER = 100;

export interface LineSimulatorOptions {
  line: string;
  /** PRNG seed: same seed, same scenario, same commands → same messages. Default 1. */
  seed?: number;
  /** Default: the built-in demo scenario. */
  scenario?: Scenario;
  /** Overrides the scenario's layout. */
  layout?: Layout;
  /** Total device count, split into a layout by layoutForDeviceCount (overrides `layout`). */
  devices?: number;
  /** Telemetry messages per device per simulated second. Default 1. */
  rateHz?: number;
  /** Simulated seconds per real second. Default 1. */
  speedup?: number;
  /** Device time at the start (ms since epoch). Default: now. */
  startTime?: number;
  /** Devices speaking MQTT to a broker. */
  mqtt?: {
    url: string;
    /** Per-device accounts (`LINE/DEVICE`, role device); undefined = connect without credentials. */
    credentials?: (line: string, device: string) => Credentials | undefined;
    /** `per-device` (a socket, account and will each), `shared` (a few gateway-role connections), `auto` (default: per-device up to 200 devices), or `sparkplug` (the line as one Sparkplug B edge node, LINE/edge, its `sharedAccount` of role sparkplug-edge). */
    mode?: 'per-device' | 'shared' | 'auto' | 'sparkplug';
    /** The `gateway`-role account for shared mode. */
    sharedAccount?: Credentials;
    /** Connections in shared mode. Default: one per 1,000 devices, at least 1. */
    sharedConnections?: number;
  };
  /** Devices on an in-process bus instead of MQTT (used when `mqtt` is absent). */
  bus?: Bus;
  /** Devices that write frames to a serial port instead (legacy devices behind the gateway). */
  serialDevices?: SerialDeviceConfig[];
  /** Devices answering Modbus TCP polls on a TCP port instead (registers as in their RTU mode). */
  modbusTcpDevices?: ModbusTcpDeviceConfig[];
}

export class LineSimulator implements Service {
  readonly name = 'simulate';
  readonly gauges = SIMULATOR_GAUGES;
  readonly model: LineModel;
  private readonly transports: DeviceTransport[] = [];
  private readonly route = new Map<string, DeviceTransport>();
  private readonly serial: SerialDevices | undefined;
  private readonly periodMs: number;
  private readonly speedup: number;
  private timer: NodeJS.Timeout | undefined;
  private realStart = 0;
  private running = false;
  private stopped = false;
  private readonly stats = { ticks: 0, messages: 0, commands: 0, late_ticks: 0, garbage_bursts: 0 };

  constructor(private readonly options: LineSimulatorOptions) {
    const scenario = options.scenario ?? loadDemoScenario();
    const rateHz = options.rateHz ?? 1;
    if (!(rateHz > 0 && rateHz <= 100)) throw new RangeError(`rateHz must be in (0, 100]; got ${rateHz}`);
    this.speedup = options.speedup ?? 1;
    if (!(this.speedup > 0)) throw new RangeError(`speedup must be positive; got ${this.speedup}`);
    this.periodMs = 1000 / rateHz;
    const layout = options.devices !== undefined ? layoutForDeviceCount(options.devices, scenario.layout.bufferCapacity) : options.layout;
    this.model = new LineModel({ seed: options.seed ?? 1, scenario, startTime: options.startTime ?? Date.now(), telemetryPeriodMs: this.periodMs, ...(layout ? { layout } : {}) });

    const ids = this.model.deviceIds();
    const serialConfigs = options.serialDevices ?? [];
    for (const s of serialConfigs) {
      if (!ids.includes(s.device)) throw new RangeError(`serial device "${s.device}" is not on this line; devices are ${ids.slice(0, 12).join(', ')}${ids.length > 12 ? ', …' : ''}`);
    }
    if (serialConfigs.length > 0) {
      this.serial = new SerialDevices(serialConfigs, { snapshot: (id) => this.model.snapshot(id), type: (id) => this.model.deviceType(id) });
      this.addTransport(this.serial, serialConfigs.map((s) => s.device));
    }
    const tcpConfigs = options.modbusTcpDevices ?? [];
    for (const t of tcpConfigs) {
      if (!ids.includes(t.device)) throw new RangeError(`Modbus TCP device "${t.device}" is not on this line; devices are ${ids.slice(0, 12).join(', ')}${ids.length > 12 ? ', …' : ''}`);
      if (serialConfigs.some((s) => s.device === t.device)) throw new RangeError(`device "${t.device}" is given both a serial port and a Modbus TCP port; give it one`);
    }
    if (tcpConfigs.length > 0) this.addTransport(new ModbusTcpDevices(tcpConfigs, { snapshot: (id) => this.model.snapshot(id), type: (id) => this.model.deviceType(id) }), tcpConfigs.map((t) => t.device));
    const networked = ids.filter((id) => !serialConfigs.some((s) => s.device === id) && !tcpConfigs.some((t) => t.device === id)).map((id) => ({ id, type: this.model.deviceType(id) as DeviceType | undefined }));
    if (networked.length === 0) return;
    if (options.mqtt) {
      const { url, mode = 'auto' } = options.mqtt;
      if (mode === 'sparkplug') {
        this.addTransport(new SparkplugEdge(url, options.line, networked, (id) => this.model.snapshot(id), options.mqtt.sharedAccount, () => this.model.now()), networked.map((d) => d.id));
        return;
      }
      const shared = mode === 'shared' || (mode === 'auto' && networked.length > PER_DEVICE_LIMIT);
      const transport = shared
        ? new SharedMqtt(url, options.line, networked, options.mqtt.sharedAccount, options.mqtt.sharedConnections ?? Math.max(1, Math.ceil(networked.length / 1000)))
        : new PerDeviceMqtt(url, options.line, networked, options.mqtt.credentials ?? (() => undefined));
      this.addTransport(transport, networked.map((d) => d.id));
    } else if (options.bus) {
      this.addTransport(new BusTransport(options.bus, options.line, networked), networked.map((d) => d.id));
    } else if (serialConfigs.length === 0 && tcpConfigs.length === 0) {
      throw new Error('LineSimulator needs `mqtt`, `bus`, `serialDevices` or `modbusTcpDevices` to send its messages somewhere');
    }
  }

  private addTransport(t: DeviceTransport, devices: string[]): void {
    this.transports.push(t);
    for (const d of devices) this.route.set(d, t);
  }

  async start(): Promise<void> {
    for (const t of this.transports) await t.start((device, cmd) => this.onCommand(device, cmd));
    this.running = true;
    this.realStart = Date.now();
    this.dispatch(this.model.advance(0));
    this.schedule();
    log.info({ line: this.options.line, devices: this.model.deviceIds().length, speedup: this.speedup, periodMs: this.periodMs }, 'simulated line running');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.running = false;
    clearTimeout(this.timer);
    for (const t of this.transports) await t.stop();
  }

  /** The devices whose transport cannot reach the world now (socket down, serial port gone, not started). */
  private disconnectedDevices(): string[] {
    return this.transports.flatMap((t) => t.disconnected());
  }

  /** down: not running, or no device connected. degraded: some devices disconnected (a scenario's `offline` event counts too). */
  health(): Health {
    if (!this.running) return { status: 'down', reasons: [this.stopped ? 'stopped' : 'not started'] };
    const total = this.model.deviceIds().length;
    const disconnected = this.disconnectedDevices();
    if (disconnected.length === 0) return HEALTHY;
    if (disconnected.length >= total) return { status: 'down', reasons: [`no device is connected (${total} devices)`] };
    const named = disconnected.slice(0, NAMED_IN_HEALTH).join(', ') + (disconnected.length > NAMED_IN_HEALTH ? `, … (${disconnected.length - NAMED_IN_HEALTH} more)` : '');
    return { status: 'degraded', reasons: [`${disconnected.length} of ${total} devices disconnected: ${named}`] };
  }

  counters(): Counters {
    const devices = this.model.deviceIds().length;
    const out: Counters = { devices, devices_connected: devices - this.disconnectedDevices().length, simulated_seconds: Math.floor(this.model.elapsed / 1000), ...this.stats };
    for (const t of this.transports) {
      for (const [k, v] of Object.entries(t.counters)) out[k] = (out[k] ?? 0) + v;
    }
    return out;
  }

  /** Advances to where the simulated clock should be now; each timer call catches up in period steps. */
  private schedule(): void {
    if (!this.running) return;
    const realPeriod = this.periodMs / this.speedup;
    const next = Math.max(realPeriod, 10);
    this.timer = setTimeout(() => {
      if (!this.running) return;
      const target = (Date.now() - this.realStart) * this.speedup;
      let steps = 0;
      while (this.model.elapsed + this.periodMs <= target && steps < MAX_STEPS_PER_TIMER) {
        this.dispatch(this.model.advance(this.periodMs));
        this.stats.ticks++;
        steps++;
      }
      if (steps > 1 && realPeriod >= 10) this.stats.late_ticks++;
      this.schedule();
    }, next);
  }

  private onCommand(device: string, cmd: CommandPayload): void {
    if (!this.running) return;
    this.stats.commands++;
    this.dispatch(this.model.command(device, cmd, Date.now()));
  }

  private dispatch(events: SimEvent[]): void {
    for (const e of events) {
      switch (e.type) {
        case 'message':
          this.route.get(e.device)?.send(e.device, e.kind, e.payload);
          this.stats.messages++;
          break;
        case 'offline':
          this.route.get(e.device)?.offline(e.device);
          break;
        case 'online':
          this.route.get(e.device)?.online(e.device);
          break;
        case 'garbage':
          if (this.serial?.garbage(e.port, e.bytes)) this.stats.garbage_bursts++;
          else log.warn({ port: e.port }, 'scenario garbage event: no open serial device or path by that name');
          break;
      }
    }
  }
}
