// The simulated production line: a pure model on a simulated clock (no timers, no I/O).
// `advance(ms)` moves the clock and returns what the devices said; `command()` hands a device
// a command and returns its immediate answer. Same seed + same scenario + same commands = same output.
//
// Flow: raw parts → st-1 → buffer → st-2 → … → st-N → finished goods. A station that cannot
// push its finished part is BLOCKED, one with nothing to take is STARVED, so a jam at st-3
// starves st-4 and st-5 and (once the buffers fill) blocks st-1 and st-2.
//
// The model is four files, one job each: devices.ts (what each device is), physics.ts (how a
// step moves them on), device-commands.ts (a command's verdict), and this one, the line: the
// clock, scenario events, what the devices say and when.
import type { AckPayload, CommandPayload, DeviceState, DeviceType, StatePayload, TelemetryPayload } from '../contracts/schemas.js';
import { judgeCommand } from './device-commands.js';
import { Controller, Conveyor, STRATEGY_EFFECT, Sensor, Station, type Device } from './devices.js';
import { stepConveyor, stepSensor, stepStation } from './physics.js';
import { Prng } from './prng.js';
import { checkScenarioDevices, type Layout, type Scenario, type ScenarioEvent } from './scenario.js';

export { CONTROLLER_ID, CONVEYOR_MAX_SPEED, NOMINAL_SPEED, RESET_TEMPERATURE, STRATEGY_EFFECT, TRIP_TEMPERATURE } from './devices.js';

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
   * default. LineSimulator passes the wall clock: a command is stamped in the line's event time
   * (docs/rules.md#which-time) and expires after its ttl of the sender's (real) time, which the
   * device clock at a speedup would run out `speedup` times too early (a re-send refused).
   */
  command(deviceId: string, cmd: CommandPayload, expiryClock = this.now()): SimEvent[] {
    const d = this.devices.get(deviceId);
    if (!d || this.isOffline(d)) return [];
    const verdict = judgeCommand(d, cmd, expiryClock, this.conveyors);
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
    for (const c of this.conveyors) stepConveyor(this, c, dt, lineRunning, strategy.speedFactor);
    for (let i = this.stations.length - 1; i >= 0; i--) stepStation(this, this.stations[i]!, dt, strategy.scrapRate);
    for (const s of this.sensors) stepSensor(this, s, dt);
    this.emitStates(false);
    this.settlePending();
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
