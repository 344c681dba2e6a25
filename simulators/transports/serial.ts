// SerialDevices — legacy devices writing codec frames to a serial port (a PTY end), or
// answering Modbus RTU polls there (../modbus-device.ts); the gateway on the other end speaks for them.
import { SerialPort } from 'serialport';
import type { DeviceMessageKind, DeviceState, DeviceType } from '../../contracts/index.js';
import { lineCodecs, type LineCodec } from '../../contracts/serial/index.js';
import { logger } from '../../lib/log.js';
import { ModbusDevice } from '../modbus-device.js';
import { newCounters, type CommandSink, type DeviceTransport } from './device-transport.js';

const log = logger('simulate');

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

  disconnected(): string[] {
    const lines = [...this.ports].filter(([, entry]) => !entry.port?.isOpen).map(([device]) => device);
    const modbus = [...this.modbus].filter(([, server]) => !server.serving).map(([device]) => device);
    return [...lines, ...modbus];
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
