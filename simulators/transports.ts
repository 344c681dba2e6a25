// How simulated devices reach the world. The model knows nothing of these; LineSimulator hands
// each device's messages to its transport and commands back to the model.
//   PerDeviceMqtt — one MQTT connection per device, its own account, a will on its status topic
//   SharedMqtt    — a few connections of a `gateway`-role account speaking for many devices
//   BusTransport  — an in-process Bus (e.g. `linewatch up` on the embedded broker)
//   SerialDevices — legacy devices writing codec frames to a serial port (a PTY end)
import mqtt, { type MqttClient } from 'mqtt';
import { SerialPort } from 'serialport';
import { untilConnected, type Bus, type Unsubscribe } from '../bus/index.js';
import { clientIdFor } from '../contracts/client-id.js';
import { DELIVERY, parseTopic, topicOf, topics, validatePayload, type CommandPayload, type DeviceMessageKind, type DeviceState, type DeviceType } from '../contracts/index.js';
import { lineCodecs, type LineCodec } from '../contracts/serial/index.js';
import { logger } from '../lib/log.js';
import { ModbusDevice } from './modbus-device.js';

const log = logger('simulate');

export type CommandSink = (device: string, cmd: CommandPayload) => void;

export interface TransportCounters {
  sent: number;
  commands_received: number;
  commands_invalid: number;
  connections: number;
}

export interface DeviceTransport {
  readonly counters: TransportCounters;
  start(onCommand: CommandSink): Promise<void>;
  send(device: string, kind: Exclude<DeviceMessageKind, 'status'>, payload: object): void;
  /** Abrupt loss (the will fires where there is one) and return. */
  offline(device: string): void;
  online(device: string): void;
  stop(): Promise<void>;
}

export interface Credentials {
  username: string;
  password: string;
}

function newCounters(): TransportCounters {
  return { sent: 0, commands_received: 0, commands_invalid: 0, connections: 0 };
}

function statusPayload(status: 'online' | 'offline', type: DeviceType | undefined): string {
  return JSON.stringify({ ts: Date.now(), status, ...(type ? { type } : {}) });
}

function onCommandMessage(counters: TransportCounters, onCommand: CommandSink, topic: string, payload: Buffer): void {
  const parsed = parseTopic(topic);
  if (parsed?.kind !== 'cmd' || !parsed.device) return;
  const cmd = validatePayload('cmd', payload);
  if (!cmd.ok) {
    counters.commands_invalid++;
    log.warn({ topic, err: cmd.error }, 'simulated device ignored an invalid command');
    return;
  }
  counters.commands_received++;
  onCommand(parsed.device, cmd.value);
}

async function connect(url: string, options: mqtt.IClientOptions, what: string): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 1000, reconnectOnConnackError: true, connectTimeout: 10_000, queueQoSZero: false, ...options });
  try {
    await untilConnected(client, 15_000, `${what} to connect to ${url}`);
  } catch (err) {
    throw new Error(`${what} cannot connect to the MQTT broker at ${url}: ${(err as Error).message}`, { cause: err });
  }
  client.on('error', (err) => log.warn({ what, err: err.message }, 'MQTT client error'));
  return client;
}

/** A fresh client id; with an account, derived from its username as the broker requires (docs/broker.md#client-ids). */
function simulatorClientId(username: string | undefined, name: string): string {
  const unique = `${name}-${Math.random().toString(36).slice(2, 8)}`;
  return username ? clientIdFor(username, unique) : unique;
}

/** One connection per device, as real smart devices have: its own account and a will. */
export class PerDeviceMqtt implements DeviceTransport {
  readonly counters = newCounters();
  private readonly clients = new Map<string, MqttClient>();

  constructor(
    private readonly url: string,
    private readonly line: string,
    private readonly devices: { id: string; type: DeviceType | undefined }[],
    private readonly credentials: (line: string, device: string) => Credentials | undefined,
  ) {}

  async start(onCommand: CommandSink): Promise<void> {
    // Connect in small batches: a burst of thousands of CONNECTs helps nobody.
    for (let i = 0; i < this.devices.length; i += 50) {
      await Promise.all(this.devices.slice(i, i + 50).map((d) => this.connectDevice(d.id, d.type, onCommand)));
    }
  }

  private async connectDevice(device: string, type: DeviceType | undefined, onCommand: CommandSink): Promise<void> {
    const status = topics.status(this.line, device);
    const credentials = this.credentials(this.line, device);
    const client = await connect(
      this.url,
      {
        clientId: simulatorClientId(credentials?.username, `sim-${this.line}-${device}`),
        ...credentials,
        will: { topic: status, payload: Buffer.from(statusPayload('offline', type)), ...DELIVERY.status },
      },
      `simulated device ${this.line}/${device}`,
    );
    this.counters.connections++;
    client.on('message', (topic, payload) => onCommandMessage(this.counters, onCommand, topic, payload));
    const announce = (): void => {
      client.publish(status, statusPayload('online', type), DELIVERY.status);
    };
    client.on('connect', announce);
    announce();
    await client.subscribeAsync(topics.cmd(this.line, device), { qos: 1 });
    this.clients.set(device, client);
  }

  send(device: string, kind: Exclude<DeviceMessageKind, 'status'>, payload: object): void {
    const client = this.clients.get(device);
    if (!client?.connected) return;
    client.publish(topicOf(kind, this.line, device), JSON.stringify(payload), DELIVERY[kind]);
    this.counters.sent++;
  }

  offline(device: string): void {
    const client = this.clients.get(device);
    if (!client) return;
    // Cut the socket without DISCONNECT so the broker publishes the will, and stay away.
    client.options.reconnectPeriod = 0;
    client.stream?.destroy();
  }

  online(device: string): void {
    const client = this.clients.get(device);
    if (!client) return;
    client.options.reconnectPeriod = 1000;
    client.reconnect();
  }

  async stop(): Promise<void> {
    await Promise.all(
      [...this.clients].map(async ([device, client]) => {
        if (client.connected) await client.publishAsync(topics.status(this.line, device), statusPayload('offline', undefined), DELIVERY.status).catch(() => undefined);
        await client.endAsync();
      }),
    );
    this.clients.clear();
  }
}

/**
 * Many devices over a few connections of one `gateway`-role account. Cheap at scale (5,000
 * devices need 5,000 sockets otherwise), but the broker sees the gateway, not the devices: no
 * per-device will (an abrupt loss is announced by an explicit offline status instead) and no
 * per-device ACL.
 */
export class SharedMqtt implements DeviceTransport {
  readonly counters = newCounters();
  private clients: MqttClient[] = [];
  private readonly index = new Map<string, number>();

  constructor(
    private readonly url: string,
    private readonly line: string,
    private readonly devices: { id: string; type: DeviceType | undefined }[],
    private readonly account: Credentials | undefined,
    private readonly connections: number,
  ) {}

  async start(onCommand: CommandSink): Promise<void> {
    const n = Math.max(1, Math.min(this.connections, this.devices.length));
    for (let i = 0; i < n; i++) {
      const client = await connect(this.url, { clientId: simulatorClientId(this.account?.username, `sim-${this.line}-shared-${i}`), ...this.account }, `simulator connection ${i}`);
      this.clients.push(client);
      this.counters.connections++;
    }
    this.devices.forEach((d, i) => this.index.set(d.id, i % n));
    // One connection takes every command for the line; more would deliver each command n times.
    const first = this.clients[0]!;
    first.on('message', (topic, payload) => onCommandMessage(this.counters, onCommand, topic, payload));
    await first.subscribeAsync(`lw/${this.line}/+/cmd`, { qos: 1 });
    for (const d of this.devices) this.clientOf(d.id).publish(topics.status(this.line, d.id), statusPayload('online', d.type), DELIVERY.status);
  }

  private clientOf(device: string): MqttClient {
    return this.clients[this.index.get(device) ?? 0]!;
  }

  send(device: string, kind: Exclude<DeviceMessageKind, 'status'>, payload: object): void {
    const client = this.clientOf(device);
    if (!client.connected) return;
    client.publish(topicOf(kind, this.line, device), JSON.stringify(payload), DELIVERY[kind]);
    this.counters.sent++;
  }

  offline(device: string): void {
    this.clientOf(device).publish(topics.status(this.line, device), statusPayload('offline', undefined), DELIVERY.status);
  }

  online(device: string): void {
    this.clientOf(device).publish(topics.status(this.line, device), statusPayload('online', undefined), DELIVERY.status);
  }

  async stop(): Promise<void> {
    for (const d of this.devices) {
      const c = this.clientOf(d.id);
      if (c.connected) c.publish(topics.status(this.line, d.id), statusPayload('offline', d.type), DELIVERY.status);
    }
    await Promise.all(this.clients.map((c) => c.endAsync()));
    this.clients = [];
  }
}

/** Devices on an in-process Bus (no sockets, no wills): for `linewatch up` and tests. */
export class BusTransport implements DeviceTransport {
  readonly counters = newCounters();
  private unsubscribe: Unsubscribe | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly line: string,
    private readonly devices: { id: string; type: DeviceType | undefined }[],
  ) {}

  async start(onCommand: CommandSink): Promise<void> {
    const ids = new Set(this.devices.map((d) => d.id));
    this.unsubscribe = await this.bus.subscribe(`lw/${this.line}/+/cmd`, (topic, payload) => {
      const device = parseTopic(topic)?.device;
      if (device && ids.has(device)) onCommandMessage(this.counters, onCommand, topic, payload);
    });
    for (const d of this.devices) this.status(d.id, 'online', d.type);
  }

  private status(device: string, status: 'online' | 'offline', type: DeviceType | undefined): void {
    this.bus.publish(topics.status(this.line, device), statusPayload(status, type), DELIVERY.status).catch((err: unknown) => log.warn({ err }, 'status publish failed'));
  }

  send(device: string, kind: Exclude<DeviceMessageKind, 'status'>, payload: object): void {
    this.bus.publish(topicOf(kind, this.line, device), JSON.stringify(payload), DELIVERY[kind]).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'publish failed'));
    this.counters.sent++;
  }

  offline(device: string): void {
    this.status(device, 'offline', undefined);
  }

  online(device: string): void {
    this.status(device, 'online', undefined);
  }

  async stop(): Promise<void> {
    for (const d of this.devices) this.status(d.id, 'offline', d.type);
    await this.unsubscribe?.();
  }
}

export interface SerialDeviceConfig {
  device: string;
  /** The device's end of the line, e.g. one end of a socat PTY pair. */
  path: string;
  /** `modbus`: the device answers Modbus RTU polls (registers: simulators/modbus-device.ts). */
  codec: 'ndjson' | 'text' | 'modbus';
  baudRate?: number;
  /** Modbus unit id (default 1). */
  unitId?: number;
}

export interface DeviceReader {
  snapshot(device: string): { state: DeviceState; values: Record<string, number> } | undefined;
  type(device: string): DeviceType | undefined;
}

interface LinePort {
  port: SerialPort | undefined;
  codec: LineCodec;
  config: SerialDeviceConfig;
  buffered: string;
  retry?: NodeJS.Timeout;
}

/** Legacy devices on serial ports; the gateway on the other end speaks for them. */
export class SerialDevices implements DeviceTransport {
  readonly counters = newCounters();
  private readonly ports = new Map<string, LinePort>();
  private readonly modbus = new Map<string, ModbusDevice>();
  private onCommand: CommandSink = () => undefined;
  private stopped = false;

  constructor(configs: SerialDeviceConfig[], reader: DeviceReader) {
    for (const c of configs) {
      if (c.codec === 'modbus') {
        const type = reader.type(c.device) ?? 'other';
        this.modbus.set(
          c.device,
          new ModbusDevice({ device: c.device, type, path: c.path, baudRate: c.baudRate ?? 9600, unitId: c.unitId ?? 1, read: () => reader.snapshot(c.device), command: (cmd) => this.onCommand(c.device, cmd) }),
        );
      } else {
        this.ports.set(c.device, { port: undefined, codec: lineCodecs[c.codec], config: c, buffered: '' });
      }
    }
  }

  async start(onCommand: CommandSink): Promise<void> {
    this.onCommand = (device, cmd) => {
      this.counters.commands_received++;
      onCommand(device, cmd);
    };
    for (const device of this.ports.keys()) await this.open(device);
    for (const m of this.modbus.values()) {
      await m.start();
      this.counters.connections++;
    }
  }

  private async open(device: string): Promise<void> {
    const entry = this.ports.get(device)!;
    if (this.stopped) return;
    const port = new SerialPort({ path: entry.config.path, baudRate: entry.config.baudRate ?? 9600, hupcl: false, autoOpen: false });
    try {
      await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
    } catch (err) {
      log.warn({ device, path: entry.config.path, err: (err as Error).message }, 'simulated serial device cannot open its port; retrying in 1 s');
      entry.retry = setTimeout(() => void this.open(device), 1000);
      return;
    }
    this.counters.connections++;
    entry.port = port;
    entry.buffered = '';
    port.on('data', (d: Buffer) => this.onData(device, d));
    port.on('error', (err) => log.warn({ device, err: err.message }, 'simulated serial device port error'));
    port.on('close', () => {
      entry.port = undefined;
      if (!this.stopped) entry.retry = setTimeout(() => void this.open(device), 1000);
    });
    port.write(entry.codec.encodeEvent('status', { ts: Date.now(), status: 'online' }));
  }

  private onData(device: string, data: Buffer): void {
    const entry = this.ports.get(device)!;
    entry.buffered += data.toString('utf8');
    if (entry.buffered.length > 8192) entry.buffered = entry.buffered.slice(-8192); // bounded
    let nl: number;
    while ((nl = entry.buffered.indexOf('\n')) >= 0) {
      const line = entry.buffered.slice(0, nl).replace(/\r$/, '');
      entry.buffered = entry.buffered.slice(nl + 1);
      const cmd = entry.codec.decodeCommand(line);
      if (!cmd.ok) {
        this.counters.commands_invalid++;
        continue;
      }
      this.onCommand(device, cmd.value);
    }
  }

  /** Line devices write their messages; Modbus devices are polled instead, so theirs are dropped here. */
  send(device: string, kind: Exclude<DeviceMessageKind, 'status'>, payload: object): void {
    const entry = this.ports.get(device);
    if (!entry?.port?.isOpen) return;
    entry.port.write(entry.codec.encodeEvent(kind, payload as Record<string, unknown>));
    this.counters.sent++;
  }

  /** Writes raw bytes on the line of the device (or serial path) named `port`. */
  garbage(portOrDevice: string, bytes: Buffer): boolean {
    const entry = this.ports.get(portOrDevice) ?? [...this.ports.values()].find((e) => e.config.path === portOrDevice);
    if (!entry?.port?.isOpen) return false;
    entry.port.write(bytes);
    return true;
  }

  offline(device: string): void {
    const entry = this.ports.get(device);
    if (entry?.port?.isOpen) entry.port.write(entry.codec.encodeEvent('status', { ts: Date.now(), status: 'offline' }));
  }

  online(device: string): void {
    const entry = this.ports.get(device);
    if (entry?.port?.isOpen) entry.port.write(entry.codec.encodeEvent('status', { ts: Date.now(), status: 'online' }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(
      [...this.ports.values()].map(async (e) => {
        clearTimeout(e.retry);
        const port = e.port;
        e.port = undefined;
        if (port?.isOpen) await new Promise<void>((resolve) => port.drain(() => port.close(() => resolve())));
      }),
    );
    await Promise.all([...this.modbus.values()].map((m) => m.stop()));
  }
}
