// A simulated device answering Modbus RTU on a serial port (modbus-serial's ServerSerial), for
// legacy devices polled by the gateway. The register layout is fixed per device type and
// `modbusMapFor(type)` gives the gateway's matching register map.
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

  async start(): Promise<void> {
    const readings = READINGS[this.o.type];
    const server = new modbusSerial.ServerSerial(
      {
        getHoldingRegister: (addr: number) => {
          const snap = this.o.read();
          if (!snap) return 0;
          if (addr === STATE_REGISTER) return DEVICE_STATES.indexOf(snap.state);
          const r = readings[addr];
          if (!r) return 0;
          return encodeRegister(snap.values[r.name] ?? 0, r);
        },
        setRegister: (addr: number, value: number) => {
          if (addr === COMMAND_REGISTERS.setSpeed) this.issue('set_speed', { speed: value / 10 });
          else if (addr === COMMAND_REGISTERS.run) this.issue(value ? 'start' : 'stop', {});
          else if (addr === COMMAND_REGISTERS.resetFault && value === 1) this.issue('reset_fault', {});
        },
      },
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
