// ModbusTcpDevices — simulated devices answering Modbus TCP polls (../modbus-device.ts), the
// same register map as their RTU mode; devices given the same host:port share one server and are
// told apart by unit id (a TCP-to-RTU gateway). The gateway polls them and speaks for them, so
// their messages are not sent here; a scenario `offline` makes the device stop answering.
import { ModbusDevice, ModbusTcpServer } from '../modbus-device.js';
import { newCounters, type CommandSink, type DeviceTransport } from './device-transport.js';
import type { DeviceReader } from './serial.js';

export interface ModbusTcpDeviceConfig {
  device: string;
  /** TCP port to listen on. */
  port: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Its unit id (default 1); devices on one host:port need different ones. */
  unitId?: number;
}

export class ModbusTcpDevices implements DeviceTransport {
  readonly counters = newCounters();
  private readonly servers = new Map<string, { server: ModbusTcpServer; devices: Map<string, number> }>();
  private onCommand: CommandSink = () => undefined;

  constructor(configs: ModbusTcpDeviceConfig[], reader: DeviceReader) {
    const byEndpoint = new Map<string, { host: string; port: number; units: Map<number, ModbusDevice>; devices: Map<string, number> }>();
    for (const c of configs) {
      const host = c.host ?? '127.0.0.1';
      const unitId = c.unitId ?? 1;
      const key = `${host}:${c.port}`;
      let entry = byEndpoint.get(key);
      if (!entry) byEndpoint.set(key, (entry = { host, port: c.port, units: new Map(), devices: new Map() }));
      if (entry.units.has(unitId)) throw new RangeError(`Modbus TCP device "${c.device}": unit id ${unitId} on ${key} is taken already; give each device on one port its own unit id`);
      const type = reader.type(c.device) ?? 'other';
      entry.units.set(unitId, new ModbusDevice({ device: c.device, type, path: '', baudRate: 0, unitId, read: () => reader.snapshot(c.device), command: (cmd) => this.onCommand(c.device, cmd) }));
      entry.devices.set(c.device, unitId);
    }
    for (const [key, e] of byEndpoint) this.servers.set(key, { server: new ModbusTcpServer(e.host, e.port, e.units), devices: e.devices });
  }

  async start(onCommand: CommandSink): Promise<void> {
    this.onCommand = (device, cmd) => {
      this.counters.commands_received++;
      onCommand(device, cmd);
    };
    for (const { server } of this.servers.values()) {
      await server.start();
      this.counters.connections++;
    }
  }

  /** Polled devices: their messages are read from the registers, not sent. */
  send(): void {}

  offline(device: string): void {
    this.silence(device, true);
  }

  online(device: string): void {
    this.silence(device, false);
  }

  private silence(device: string, silent: boolean): void {
    for (const { server, devices } of this.servers.values()) {
      const unitId = devices.get(device);
      if (unitId !== undefined) server.setSilent(unitId, silent);
    }
  }

  disconnected(): string[] {
    return [...this.servers.values()].flatMap(({ server, devices }) => (server.serving ? [] : [...devices.keys()]));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.servers.values()].map(({ server }) => server.stop()));
  }
}
