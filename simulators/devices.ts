// The devices of the simulated line and what each one is: its state, its physical quantities
// and its telemetry readings. How they move on in time is physics.ts; the line that holds them
// and speaks for them is model.ts.
import type { DeviceState, DeviceType, Strategy } from '../contracts/schemas.js';
import type { Prng } from './prng.js';

export const CONTROLLER_ID = 'line-ctl';
export const CONVEYOR_MAX_SPEED = 60; // m/min
export const NOMINAL_SPEED = 40; // m/min at which a station runs its base cycle time
export const TRIP_TEMPERATURE = 95; // °C: the motor protection trips the conveyor
export const RESET_TEMPERATURE = 80; // °C: below this a tripped conveyor may be reset
export const BASE_CYCLE_MS = 5000;
export const AMBIENT = 22;

/** How far each strategy lets the conveyors run (fraction of the setpoint) and how much scrap it makes. */
export const STRATEGY_EFFECT: Record<Strategy, { speedFactor: number; scrapRate: number }> = {
  'max-throughput': { speedFactor: 1, scrapRate: 0.02 },
  'quality-first': { speedFactor: 0.85, scrapRate: 0.004 },
  'energy-saving': { speedFactor: 0.7, scrapRate: 0.01 },
  safe: { speedFactor: 0.5, scrapRate: 0.005 },
};

/** The line's finished-goods counts, which the controller reports. */
export interface LineOutput {
  readonly goodCount: number;
  readonly scrapCount: number;
}

export interface PendingAck {
  id: string;
  done: () => boolean;
  deadline: number;
  failReason: string;
}

export abstract class Device {
  seq = 0;
  stopped = false;
  silentUntil = -1;
  offlineUntil = -1;
  state: DeviceState = 'RUNNING';
  reason: string | undefined;
  lastState: DeviceState | undefined;
  lastReason: string | undefined;
  pending: PendingAck[] = [];
  abstract readonly type: DeviceType;
  constructor(
    readonly id: string,
    readonly rng: Prng,
  ) {}
  abstract readings(): Record<string, number>;
}

export class Controller extends Device {
  readonly type = 'line-controller' as const;
  setpoint: number;
  strategy: Strategy;
  constructor(rng: Prng, setpoint: number, strategy: Strategy, private readonly line: LineOutput) {
    super(CONTROLLER_ID, rng);
    this.setpoint = setpoint;
    this.strategy = strategy;
  }
  readings(): Record<string, number> {
    return {
      speedSetpoint: this.setpoint,
      strategyCode: STRATEGY_CODES.indexOf(this.strategy),
      goodCount: this.line.goodCount,
      scrapCount: this.line.scrapCount,
    };
  }
}

export const STRATEGY_CODES = Object.keys(STRATEGY_EFFECT) as Strategy[];

export class Conveyor extends Device {
  readonly type = 'conveyor' as const;
  setpoint: number;
  speed = 0;
  motorTemp = AMBIENT;
  vibration = 0;
  current = 0;
  load = 0;
  extraHeat = 0;
  overheatUntil = -1;
  target = 0;
  constructor(id: string, rng: Prng, setpoint: number) {
    super(id, rng);
    this.setpoint = setpoint;
  }
  readings(): Record<string, number> {
    return {
      speed: round(this.speed, 2),
      setpoint: this.setpoint,
      motorTemp: round(this.motorTemp, 2),
      vibration: round(this.vibration, 3),
      current: round(this.current, 2),
      load: round(this.load, 3),
    };
  }
}

export class Station extends Device {
  readonly type = 'station' as const;
  holding = false;
  finished = false;
  progress = 0;
  cycleMs: number;
  lastCycleMs = 0;
  good = 0;
  scrap = 0;
  jammedUntil = -1;
  maintenanceUntil = -1;
  waitingMs = 0;
  conveyor!: Conveyor;
  input: PartBuffer | undefined;
  output: PartBuffer | undefined;
  constructor(id: string, rng: Prng) {
    super(id, rng);
    this.cycleMs = BASE_CYCLE_MS * (1 + 0.05 * rng.noise());
  }
  readings(): Record<string, number> {
    return { cycleTime: round(this.lastCycleMs / 1000, 3), goodCount: this.good, scrapCount: this.scrap, inputBuffer: this.input?.count ?? 0 };
  }
}

/** The buffer between two stations, in parts. */
export interface PartBuffer {
  count: number;
  capacity: number;
}

export class Sensor extends Device {
  readonly type = 'sensor' as const;
  temperature = AMBIENT;
  humidity = 45;
  drift = { temperature: 0, humidity: 0 };
  driftRate = { temperature: 0, humidity: 0 };
  driftUntil = -1;
  phase: number;
  constructor(id: string, rng: Prng) {
    super(id, rng);
    this.phase = rng.between(0, Math.PI * 2);
  }
  readings(): Record<string, number> {
    return { temperature: round(this.temperature, 2), humidity: round(this.humidity, 2) };
  }
}

export function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
