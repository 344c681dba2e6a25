// A simulated device answering Modbus RTU on a serial port (modbus-serial's ServerSerial), or
// Modbus TCP on a TCP port (ServerTCP, ModbusTcpServer below: several devices by unit id, like a
// TCP-to-RTU gateway), for devices polled by the gateway. The register layout is fixed per device
// type, the same over RTU and TCP, and `modbusMapFor(type)` gives the gateway's matching register map.
import modbusSerial from 'modbus-serial';
import { DEVICE_STATES, type CommandPayload, type DeviceState, type DeviceType } from '../contracts/index.js';
import { encodeRegister, type ModbusMapInput } from '../contracts/serial/index.js';
import { withTimeout } from '../lib/wait.js';

interface Reading {
  name: string;
  scale: number;
  signed?: boolean;
}

/** Holding registers 0…n-1: the device's readings, in this order. */
const READINGS: Record<DeviceType, Reading[]> = {
  'line-controller': [{ name: 'speedSetpoint', scale: 10 }, { name: 'strategyCode', scale: 1 }, { name: 'goodCount', scale: 1 }, { name: 'scrapCount', scale: 1 }],
  conveyor: [
    { name: 'speed', scale: 10 },
    { name: 'setpoint', scale: 10 },
    { name: 'motorTemp', scale: 10, signed: true },
    { name: 'vibration', scale: 100 },
    { name: 'current', scale: 10 },
    { name: 'load', scale: 1000 },
  ],
  station: [{ name: 'cycleTime', scale: 100 }, { name: 'goodCount', scale: 1 }, { name: 'scrapCount', scale: 1 }, { name: 'inputBuffer', scale: 1 }],
  sensor: [{ name: 'temperature', scale: 10, signed: true }, { name: 'humidity', scale: 10 }],
  plc: [],
  other: [],
};

/** Holding register with the state as an index into DEVICE_STATES. */
export const STATE_REGISTER = 50;
/** Writable holding registers: speed setpoint ×10, run (1 start, 0 stop), reset fault (write 1). */
export const COMMAND_REGISTERS = { setSpeed: 100, run: 101, resetFault: 102 } as const;

/** The gateway register map that reads a simulated device of `type`. */
export function modbusMapFor(type: DeviceType, unitId = 1): ModbusMapInput {
  return {
    unitId,
    registers: READINGS[type].map((r, i) => ({ name: r.name, address: i, scale: r.scale, signed: r.signed ?? false })),
    stateRegister: { address: STATE_REGISTER, states: [...DEVICE_STATES] },
    commands: {
      set_speed: { address: COMMAND_REGISTERS.setSpeed, scale: 10 },
      start: { address: COMMAND_REGISTERS.run, value: 1 },
      stop: { address: COMMAND_REGISTERS.run, value: 0 },
      reset_fault: { address: COMMAND_REGISTERS.resetFault, value: 1 },
    },
  };
}

export interface ModbusDeviceOptions {
  device: string;
  type: DeviceType;
  /** RTU: the serial port it answers on (unused by a ModbusTcpServer). */
  path: string;
  baudRate: number;
  unitId: number;
  read: () => { state: DeviceState; values: Record<string, number> } | undefined;
  command: (cmd: CommandPayload) => void;
}

export class ModbusDevice {
  private server: InstanceType<typeof modbusSerial.ServerSerial> | undefined;
  private writes = 0;
  private initialized = false;

  constructor(private readonly o: ModbusDeviceOptions) {}

  /** True from the port opening for the Modbus server until stop(). */
  get serving(): boolean {
    return this.server !== undefined && this.initialized;
  }

  /** The device's holding register `addr` (0 for an unmapped one). */
  holdingRegister(addr: number): number {
    const snap = this.o.read();
    if (!snap) return 0;
    if (addr === STATE_REGISTER) return DEVICE_STATES.indexOf(snap.state);
    const r = READINGS[this.o.type][addr];
    if (!r) return 0;
    return encodeRegister(snap.values[r.name] ?? 0, r);
  }

  /** A write of holding register `addr`: a command register becomes the command to the model. */
  writeRegister(addr: number, value: number): void {
    if (addr === COMMAND_REGISTERS.setSpeed) this.issue('set_speed', { speed: value / 10 });
    else if (addr === COMMAND_REGISTERS.run) this.issue(value ? 'start' : 'stop', {});
    else if (addr === COMMAND_REGISTERS.resetFault && value === 1) this.issue('reset_fault', {});
  }

  async start(): Promise<void> {
    const server = new modbusSerial.ServerSerial(
      { getHoldingRegister: (addr: number) => this.holdingRegister(addr), setRegister: (addr: number, value: number) => this.writeRegister(addr, value) },
      { path: this.o.path, baudRate: this.o.baudRate, unitID: this.o.unitId },
    );
    this.server = server;
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        server.once('initialized', () => {
          this.initialized = true;
          resolve();
        });
        server.once('error', (err: Error) => reject(err));
      }),
      5000,
      `the simulated Modbus device ${this.o.device} to open ${this.o.path}`,
    );
  }

  private issue(action: CommandPayload['action'], params: CommandPayload['params']): void {
    this.o.command({ id: `modbus-${this.o.device}-${++this.writes}`, action, params, origin: 'modbus-register-write', ts: Date.now(), expiresAt: Number.MAX_SAFE_INTEGER });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    this.initialized = false;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/** Modbus exception 0x0B: "gateway target device failed to respond", what a TCP-to-RTU gateway answers for a unit it cannot reach. */
const TARGET_FAILED = 0x0b;

/**
 * Simulated devices answering Modbus TCP on one host:port, each by its unit id (one device is a
 * Modbus TCP device; several are a TCP-to-RTU gateway). A unit id it does not serve, or a device
 * taken offline by the scenario, is answered with exception 0x0B, as such a gateway does.
 */
export class ModbusTcpServer {
  private server: InstanceType<typeof modbusSerial.ServerTCP> | undefined;
  private listening = false;
  private readonly silent = new Set<number>();

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly units: ReadonlyMap<number, ModbusDevice>,
  ) {}

  get serving(): boolean {
    return this.listening;
  }

  /** The scenario took the device of `unitId` offline (true) or back (false). */
  setSilent(unitId: number, silent: boolean): void {
    if (silent) this.silent.add(unitId);
    else this.silent.delete(unitId);
  }

  async start(): Promise<void> {
    const unit = (unitId: number): ModbusDevice => {
      const device = this.units.get(unitId);
      if (!device || this.silent.has(unitId)) throw Object.assign(new Error(`no device answers unit id ${unitId}`), { modbusErrorCode: TARGET_FAILED });
      return device;
    };
    const server = new modbusSerial.ServerTCP(
      {
        getHoldingRegister: (addr: number, unitId: number) => unit(unitId).holdingRegister(addr),
        setRegister: (addr: number, value: number, unitId: number) => unit(unitId).writeRegister(addr, value),
      },
      // unitID 255: answer every unit id (modbus-serial's "listen to all addresses"); ours are dispatched above.
      { host: this.host, port: this.port, unitID: 255 },
    );
    this.server = server;
    // A client's socket error (reset by the gateway) must not reach an unhandled 'error' event.
    server.on('socketError', () => undefined);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        server.once('initialized', () => {
          this.listening = true;
          resolve();
        });
        server.once('serverError', (err: Error) => reject(new Error(`the simulated Modbus TCP server cannot listen on ${this.host}:${this.port}: ${err.message}`, { cause: err })));
      }),
      5000,
      `the simulated Modbus TCP server to listen on ${this.host}:${this.port}`,
    );
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    this.listening = false;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
