// The simulated production line: a pure model on a simulated clock (no timers, no I/O).
// `advance(ms)` moves the clock and returns what the devices said; `command()` hands a device
// a command and returns its immediate answer. Same seed + same scenario + same commands = same output.
//
// Flow: raw parts → st-1 → buffer → st-2 → … → st-N → finished goods. A station that cannot
// push its finished part is BLOCKED, one with nothing to take is STARVED, so a jam at st-3
// starves st-4 and st-5 and (once the buffers fill) blocks st-1 and st-2.
import type { AckPayload, CommandPayload, DeviceState, DeviceType, StatePayload, Strategy, TelemetryPayload } from '../contracts/schemas.js';
import { Prng } from './prng.js';
import { checkScenarioDevices, type Layout, type Scenario, type ScenarioEvent } from './scenario.js';

export const CONTROLLER_ID = 'line-ctl';
export const CONVEYOR_MAX_SPEED = 60; // m/min
export const NOMINAL_SPEED = 40; // m/min at which a station runs its base cycle time
export const TRIP_TEMPERATURE = 95; // °C: the motor protection trips the conveyor
export const RESET_TEMPERATURE = 80; // °C: below this a tripped conveyor may be reset
const BASE_CYCLE_MS = 5000;
const AMBIENT = 22;
const SPEED_TAU_MS = 4000; // conveyor inertia
const THERMAL_TAU_MS = 60_000;
const SET_SPEED_DEADLINE_MS = 30_000;
const WAIT_GRACE_MS = 3000; // a station waiting longer than this is STARVED or BLOCKED

/** How far each strategy lets the conveyors run (fraction of the setpoint) and how much scrap it makes. */
export const STRATEGY_EFFECT: Record<Strategy, { speedFactor: number; scrapRate: number }> = {
  'max-throughput': { speedFactor: 1, scrapRate: 0.02 },
  'quality-first': { speedFactor: 0.85, scrapRate: 0.004 },
  'energy-saving': { speedFactor: 0.7, scrapRate: 0.01 },
  safe: { speedFactor: 0.5, scrapRate: 0.005 },
};

export type DeviceMessage =
  | { type: 'message'; device: string; kind: 'state'; payload: StatePayload }
  | { type: 'message'; device: string; kind: 'telemetry'; payload: TelemetryPayload }
  | { type: 'message'; device: string; kind: 'ack'; payload: AckPayload };

/** What the model tells its transports: messages, plus network-level faults to act out. */
export type SimEvent =
  | DeviceMessage
  | { type: 'offline'; device: string }
  | { type: 'online'; device: string }
  | { type: 'garbage'; port: string; bytes: Buffer };

export interface LineModelOptions {
  seed: number;
  scenario: Scenario;
  /** Device time at simulated t = 0 (ms since epoch). */
  startTime: number;
  /** Telemetry period in simulated ms (1000 / rateHz). */
  telemetryPeriodMs?: number;
  /** Overrides the scenario's layout (e.g. `--devices 5000`). */
  layout?: Layout;
}

interface PendingAck {
  id: string;
  done: () => boolean;
  deadline: number;
  failReason: string;
}

abstract class Device {
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

class Controller extends Device {
  readonly type = 'line-controller' as const;
  setpoint: number;
  strategy: Strategy;
  constructor(rng: Prng, setpoint: number, strategy: Strategy, private readonly line: LineModel) {
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

const STRATEGY_CODES = Object.keys(STRATEGY_EFFECT) as Strategy[];

class Conveyor extends Device {
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

class Station extends Device {
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
  input: Buffer_ | undefined;
  output: Buffer_ | undefined;
  constructor(id: string, rng: Prng) {
    super(id, rng);
    this.cycleMs = BASE_CYCLE_MS * (1 + 0.05 * rng.noise());
  }
  readings(): Record<string, number> {
    return { cycleTime: round(this.lastCycleMs / 1000, 3), goodCount: this.good, scrapCount: this.scrap, inputBuffer: this.input?.count ?? 0 };
  }
}

interface Buffer_ {
  count: number;
  capacity: number;
}

class Sensor extends Device {
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

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export class LineModel {
  /** Simulated ms since start. */
  elapsed = 0;
  goodCount = 0;
  scrapCount = 0;
  readonly layout: Layout;
  readonly controller: Controller;
  readonly conveyors: Conveyor[] = [];
  readonly stations: Station[] = [];
  readonly sensors: Sensor[] = [];
  private readonly devices = new Map<string, Device>();
  private readonly events: ScenarioEvent[];
  private nextEvent = 0;
  private sinceTelemetry = 0;
  private readonly telemetryPeriodMs: number;
  private readonly startTime: number;
  private readonly rng: Prng;
  private out: SimEvent[] = [];
  private started = false;

  constructor(options: LineModelOptions) {
    const { scenario } = options;
    this.layout = options.layout ?? scenario.layout;
    this.startTime = options.startTime;
    this.telemetryPeriodMs = options.telemetryPeriodMs ?? 1000;
    this.rng = new Prng(options.seed);
    const { conveyors, stations, sensors, bufferCapacity } = this.layout;
    let salt = 1;
    this.controller = new Controller(this.rng.fork(salt++), scenario.speed, scenario.strategy, this);
    this.add(this.controller);
    for (let i = 1; i <= conveyors; i++) this.conveyors.push(this.add(new Conveyor(`conv-${i}`, this.rng.fork(salt++), scenario.speed)));
    for (let i = 1; i <= stations; i++) this.stations.push(this.add(new Station(`st-${i}`, this.rng.fork(salt++))));
    for (let i = 1; i <= sensors; i++) this.sensors.push(this.add(new Sensor(`env-${i}`, this.rng.fork(salt++))));
    this.stations.forEach((st, i) => {
      st.conveyor = this.conveyors[Math.floor((i * conveyors) / stations)]!;
      if (i > 0) {
        // Half-full buffers: the line starts in its steady state rather than starved.
        const buffer = { count: Math.floor(bufferCapacity / 2), capacity: bufferCapacity };
        this.stations[i - 1]!.output = buffer;
        st.input = buffer;
      }
    });
    checkScenarioDevices(scenario, new Set(this.devices.keys()));
    this.events = [...scenario.events].sort((a, b) => a.at - b.at);
  }

  private add<D extends Device>(d: D): D {
    this.devices.set(d.id, d);
    return d;
  }

  /** Device ids in a stable order: controller, conveyors, stations, sensors. */
  deviceIds(): string[] {
    return [...this.devices.keys()];
  }

  deviceType(id: string): DeviceType | undefined {
    return this.devices.get(id)?.type;
  }

  now(): number {
    return this.startTime + this.elapsed;
  }

  /** Moves simulated time on by `ms` (in physics steps of at most 1 s) and returns what happened. */
  advance(ms: number): SimEvent[] {
    if (!this.started) {
      this.started = true;
      this.emitStates(true);
    }
    let left = ms;
    while (left > 0) {
      const dt = Math.min(left, 1000, this.telemetryPeriodMs - this.sinceTelemetry);
      this.step(dt);
      left -= dt;
      this.sinceTelemetry += dt;
      if (this.sinceTelemetry >= this.telemetryPeriodMs) {
        this.sinceTelemetry = 0;
        this.emitTelemetry();
      }
    }
    const out = this.out;
    this.out = [];
    return out;
  }

  /**
   * Gives `device` a command; returns its immediate answer (accepted or rejected). `done` follows
   * from advance(). `expiryClock` is the time `expiresAt` is judged against: the device clock by
   * default; LineSimulator passes the wall clock, since commands come from outside the simulation.
   */
  command(deviceId: string, cmd: CommandPayload, expiryClock = this.now()): SimEvent[] {
    const d = this.devices.get(deviceId);
    if (!d || this.isOffline(d)) return [];
    const verdict = this.apply(d, cmd, expiryClock);
    if (typeof verdict === 'string') {
      this.ack(d, { id: cmd.id, result: 'rejected', reason: verdict });
    } else {
      this.ack(d, { id: cmd.id, result: 'accepted' });
      d.pending.push({ id: cmd.id, done: verdict.done, deadline: this.elapsed + (verdict.deadlineMs ?? 0), failReason: verdict.failReason ?? '' });
    }
    const out = this.out;
    this.out = [];
    return out;
  }

  /** Returns a rejection reason, or how to tell the command is done. */
  private apply(d: Device, cmd: CommandPayload, now: number): string | { done: () => boolean; deadlineMs?: number; failReason?: string } {
    if (cmd.expiresAt < now) return `expired: expiresAt ${cmd.expiresAt} is before the device's time ${now}`;
    const immediately = { done: () => true };
    switch (cmd.action) {
      case 'set_speed': {
        const speed = cmd.params.speed;
        if (typeof speed !== 'number' || !Number.isFinite(speed)) return 'set_speed needs a numeric params.speed in m/min';
        if (speed < 0 || speed > CONVEYOR_MAX_SPEED) return `speed ${speed} m/min is outside 0–${CONVEYOR_MAX_SPEED} m/min, the conveyors' range`;
        if (d instanceof Controller) {
          d.setpoint = speed;
          for (const c of this.conveyors) c.setpoint = speed;
          return immediately;
        }
        if (d instanceof Conveyor) {
          if (d.state === 'FAULT') return `conveyor is in FAULT (${d.reason ?? 'fault'}); send reset_fault first`;
          d.setpoint = speed;
          return { done: () => Math.abs(d.speed - d.target) < 0.5, deadlineMs: SET_SPEED_DEADLINE_MS, failReason: 'did not reach the speed within 30 s' };
        }
        return `a ${d.type} has no speed; send set_speed to ${CONTROLLER_ID} or a conveyor`;
      }
      case 'set_strategy': {
        const strategy = cmd.params.strategy;
        if (!(d instanceof Controller)) return `only ${CONTROLLER_ID} takes set_strategy`;
        if (typeof strategy !== 'string' || !(strategy in STRATEGY_EFFECT)) return `unknown strategy ${String(strategy)}; use one of ${STRATEGY_CODES.join(', ')}`;
        d.strategy = strategy as Strategy;
        return immediately;
      }
      case 'stop':
        d.stopped = true;
        return immediately;
      case 'start':
        if (d.state === 'FAULT') return `in FAULT (${d.reason ?? 'fault'}); send reset_fault first`;
        d.stopped = false;
        return immediately;
      case 'reset_fault':
        if (d.state !== 'FAULT') return `not in FAULT (state ${d.state})`;
        if (d instanceof Conveyor && d.motorTemp > RESET_TEMPERATURE) {
          return `motor still at ${d.motorTemp.toFixed(1)} °C; let it cool below ${RESET_TEMPERATURE} °C`;
        }
        if (d instanceof Station) d.jammedUntil = -1;
        d.state = 'RUNNING';
        d.reason = undefined;
        return immediately;
    }
  }

  private isOffline(d: Device): boolean {
    return d.offlineUntil > this.elapsed;
  }

  private step(dt: number): void {
    this.elapsed += dt;
    this.fireScenarioEvents();
    const strategy = STRATEGY_EFFECT[this.controller.strategy];
    const lineRunning = !this.controller.stopped;
    this.controller.state = lineRunning ? 'RUNNING' : 'STOPPED';
    this.controller.reason = `strategy ${this.controller.strategy}`;
    for (const c of this.conveyors) this.stepConveyor(c, dt, lineRunning, strategy.speedFactor);
    for (let i = this.stations.length - 1; i >= 0; i--) this.stepStation(this.stations[i]!, dt, strategy.scrapRate);
    for (const s of this.sensors) this.stepSensor(s, dt);
    this.emitStates(false);
    this.settlePending();
  }

  private stepConveyor(c: Conveyor, dt: number, lineRunning: boolean, speedFactor: number): void {
    if (c.overheatUntil >= 0 && c.overheatUntil <= this.elapsed) {
      c.extraHeat = 0;
      c.overheatUntil = -1;
    }
    if (c.state !== 'FAULT') {
      if (c.stopped) c.state = 'STOPPED';
      else if (!lineRunning) c.state = 'IDLE';
      else c.state = c.setpoint > 0 ? 'RUNNING' : 'IDLE';
      c.reason = c.stopped ? 'stopped by command' : !lineRunning ? 'line stopped' : undefined;
    }
    c.target = c.state === 'RUNNING' ? Math.min(c.setpoint, CONVEYOR_MAX_SPEED) * speedFactor : 0;
    c.speed += (c.target - c.speed) * (1 - Math.exp(-dt / SPEED_TAU_MS));
    if (Math.abs(c.speed) < 0.01) c.speed = 0;
    const load = this.conveyorLoad(c);
    c.load = load;
    // An overheating drive (a failing bearing, a dragging belt) adds friction heat that grows with
    // speed, which is why slowing the conveyor down is the remedy.
    const equilibrium = AMBIENT + 0.55 * c.speed * (0.6 + 0.8 * load) + (c.extraHeat * c.speed) / NOMINAL_SPEED;
    c.motorTemp += (equilibrium - c.motorTemp) * (1 - Math.exp(-dt / THERMAL_TAU_MS)) + 0.02 * c.rng.noise();
    const hot = Math.max(0, c.motorTemp - 85) * 0.08;
    c.vibration = Math.max(0, 0.4 + 0.045 * c.speed + hot + 0.05 * Math.abs(c.rng.noise()));
    c.current = c.speed > 0 ? 1.5 + 0.12 * c.speed * (0.6 + load) : 0.2;
    if (c.state !== 'FAULT' && c.motorTemp >= TRIP_TEMPERATURE) {
      c.state = 'FAULT';
      c.reason = `motor over temperature (${c.motorTemp.toFixed(1)} °C)`;
    }
  }

  private conveyorLoad(c: Conveyor): number {
    let parts = 0;
    let capacity = 0;
    for (const st of this.stations) {
      if (st.conveyor !== c || !st.output) continue;
      parts += st.output.count;
      capacity += st.output.capacity;
    }
    return capacity === 0 ? 0.5 : parts / capacity;
  }

  private stepStation(st: Station, dt: number, scrapRate: number): void {
    if (st.jammedUntil >= 0 && st.jammedUntil <= this.elapsed && st.state === 'FAULT') {
      st.jammedUntil = -1;
      st.state = 'RUNNING';
      st.reason = undefined;
    }
    if (st.maintenanceUntil >= 0 && st.maintenanceUntil <= this.elapsed) {
      st.maintenanceUntil = -1;
      if (st.state === 'MAINTENANCE') st.state = 'RUNNING';
    }
    if (st.state === 'FAULT' || st.state === 'MAINTENANCE') return;
    if (st.stopped) {
      st.state = 'STOPPED';
      st.reason = 'stopped by command';
      return;
    }
    let left = dt;
    // A station may finish, push and start another part within one step.
    for (let guard = 0; guard < 10; guard++) {
      if (st.finished) {
        if (st.output && st.output.count >= st.output.capacity) {
          this.waitAt(st, dt, 'BLOCKED', 'downstream buffer full');
          return;
        }
        if (st.output) st.output.count++;
        else this.finishPart(st, scrapRate);
        st.finished = false;
        st.holding = false;
      }
      if (!st.holding) {
        if (st.input && st.input.count === 0) {
          this.waitAt(st, dt, 'STARVED', 'upstream buffer empty');
          return;
        }
        if (st.input) st.input.count--;
        st.holding = true;
        st.progress = 0;
      }
      const speed = st.conveyor.speed;
      if (speed < 1) {
        this.setStation(st, 'IDLE', 'conveyor not moving');
        return;
      }
      st.waitingMs = 0;
      this.setStation(st, 'RUNNING', undefined);
      const cycle = (st.cycleMs * NOMINAL_SPEED) / speed;
      const need = (cycle - st.progress);
      if (left < need) {
        st.progress += left;
        return;
      }
      left -= need;
      st.finished = true;
      st.lastCycleMs = cycle;
      st.cycleMs = BASE_CYCLE_MS * (1 + 0.05 * st.rng.noise());
      if (st.output) this.countAtStation(st, scrapRate);
    }
  }

  /** Every station counts its own good and scrap parts; the last one also counts the line's output. */
  private countAtStation(st: Station, scrapRate: number): void {
    const hot = st.conveyor.motorTemp > 80 ? 0.05 : 0;
    if (st.rng.next() < scrapRate + hot) st.scrap++;
    else st.good++;
  }

  private finishPart(st: Station, scrapRate: number): void {
    const before = st.scrap;
    this.countAtStation(st, scrapRate);
    if (st.scrap > before) this.scrapCount++;
    else this.goodCount++;
  }

  /** Waiting a moment for a part or for room is normal flow; only a longer wait is reported. */
  private waitAt(st: Station, dt: number, state: 'BLOCKED' | 'STARVED', reason: string): void {
    st.waitingMs += dt;
    if (st.waitingMs >= WAIT_GRACE_MS || (st.state !== 'RUNNING' && st.state !== 'BLOCKED' && st.state !== 'STARVED')) this.setStation(st, state, reason);
  }

  private setStation(st: Station, state: DeviceState, reason: string | undefined): void {
    st.state = state;
    st.reason = reason;
  }

  private stepSensor(s: Sensor, dt: number): void {
    if (s.driftUntil >= 0 && s.driftUntil <= this.elapsed) {
      s.driftRate = { temperature: 0, humidity: 0 };
      s.driftUntil = -1;
    }
    s.drift.temperature += (s.driftRate.temperature * dt) / 60_000;
    s.drift.humidity += (s.driftRate.humidity * dt) / 60_000;
    const daily = Math.sin(s.phase + (this.elapsed / 86_400_000) * 2 * Math.PI);
    s.temperature = AMBIENT + 1.5 * daily + 0.1 * s.rng.noise() + s.drift.temperature;
    s.humidity = Math.min(100, Math.max(0, 45 - 5 * daily + 0.3 * s.rng.noise() + s.drift.humidity));
    s.state = s.stopped ? 'STOPPED' : 'RUNNING';
  }

  private fireScenarioEvents(): void {
    while (this.nextEvent < this.events.length && this.events[this.nextEvent]!.at <= this.elapsed) {
      const e = this.events[this.nextEvent++]!;
      const until = (duration: number | undefined): number => (duration === undefined ? Number.MAX_SAFE_INTEGER : this.elapsed + duration);
      if (e.overheat) {
        const c = this.devices.get(e.overheat.device) as Conveyor;
        c.extraHeat = e.overheat.heat;
        c.overheatUntil = e.overheat.duration === undefined ? -1 : until(e.overheat.duration);
      } else if (e.jam) {
        const st = this.devices.get(e.jam.station) as Station;
        st.state = 'FAULT';
        st.reason = 'jam';
        st.jammedUntil = until(e.jam.duration);
      } else if (e.maintenance) {
        const st = this.devices.get(e.maintenance.station) as Station;
        st.state = 'MAINTENANCE';
        st.reason = 'scheduled maintenance';
        st.maintenanceUntil = until(e.maintenance.duration);
      } else if (e.drift) {
        const s = this.devices.get(e.drift.device) as Sensor;
        s.driftRate[e.drift.reading] = e.drift.rate;
        s.driftUntil = e.drift.duration === undefined ? -1 : until(e.drift.duration);
      } else if (e.silence) {
        this.devices.get(e.silence.device)!.silentUntil = until(e.silence.duration);
      } else if (e.offline) {
        const d = this.devices.get(e.offline.device)!;
        d.offlineUntil = until(e.offline.duration);
        this.out.push({ type: 'offline', device: d.id });
      } else if (e.garbage) {
        const bytes = Buffer.alloc(e.garbage.bytes);
        for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(this.rng.next() * 256);
        this.out.push({ type: 'garbage', port: e.garbage.port, bytes });
      }
    }
    for (const d of this.devices.values()) {
      if (d.offlineUntil >= 0 && d.offlineUntil <= this.elapsed) {
        d.offlineUntil = -1;
        d.lastState = undefined; // re-announce the state after coming back
        this.out.push({ type: 'online', device: d.id });
      }
      if (d.silentUntil >= 0 && d.silentUntil <= this.elapsed) d.silentUntil = -1;
    }
  }

  private mute(d: Device): boolean {
    return d.silentUntil > this.elapsed || d.offlineUntil > this.elapsed;
  }

  private emitStates(all: boolean): void {
    for (const d of this.devices.values()) {
      if (!all && d.state === d.lastState && d.reason === d.lastReason) continue;
      if (this.mute(d)) continue;
      d.lastState = d.state;
      d.lastReason = d.reason;
      const payload: StatePayload = { ts: this.now(), seq: d.seq++, state: d.state, type: d.type };
      if (d.reason !== undefined) payload.reason = d.reason;
      if (d instanceof Controller) payload.strategy = d.strategy;
      this.out.push({ type: 'message', device: d.id, kind: 'state', payload });
    }
  }

  private emitTelemetry(): void {
    const ts = this.now();
    for (const d of this.devices.values()) {
      if (this.mute(d)) continue;
      this.out.push({ type: 'message', device: d.id, kind: 'telemetry', payload: { ts, seq: d.seq++, values: d.readings(), type: d.type } });
    }
  }

  private settlePending(): void {
    for (const d of this.devices.values()) {
      if (d.pending.length === 0) continue;
      d.pending = d.pending.filter((p) => {
        if (p.done()) {
          this.ack(d, { id: p.id, result: 'done' });
          return false;
        }
        if (this.elapsed >= p.deadline) {
          this.ack(d, { id: p.id, result: 'failed', reason: p.failReason || 'not done in time' });
          return false;
        }
        return true;
      });
    }
  }

  private ack(d: Device, a: { id: string; result: AckPayload['result']; reason?: string }): void {
    if (this.mute(d)) return;
    const payload: AckPayload = { id: a.id, result: a.result, ts: this.now(), seq: d.seq++ };
    if (a.reason !== undefined) payload.reason = a.reason;
    this.out.push({ type: 'message', device: d.id, kind: 'ack', payload });
  }

  /** A read-only view for tests and the CLI. */
  snapshot(id: string): { state: DeviceState; reason?: string; values: Record<string, number> } | undefined {
    const d = this.devices.get(id);
    if (!d) return undefined;
    return { state: d.state, ...(d.reason !== undefined ? { reason: d.reason } : {}), values: d.readings() };
  }
}

/** Splits a total device count into a line layout: 1 controller, ~20 % conveyors, ~10 % sensors, the rest stations. */
export function layoutForDeviceCount(total: number, bufferCapacity = 4): Layout {
  if (!Number.isInteger(total) || total < 3) throw new RangeError(`a line needs at least 3 devices (controller, conveyor, station); got ${total}`);
  const rest = total - 1;
  const conveyors = Math.max(1, Math.round(rest * 0.2));
  const sensors = rest - conveyors >= 2 ? Math.round(rest * 0.1) : 0;
  const stations = rest - conveyors - sensors;
  return { conveyors, stations, sensors, bufferCapacity };
}
