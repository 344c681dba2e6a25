// How the simulated line moves on in time, one step of at most 1 s: conveyors follow their
// target speed and heat up, stations take, work and pass on parts (STARVED / BLOCKED / IDLE),
// sensors drift. Pure functions of the devices, the step and the device's own PRNG stream.
import type { DeviceState } from '../contracts/schemas.js';
import { AMBIENT, BASE_CYCLE_MS, CONVEYOR_MAX_SPEED, NOMINAL_SPEED, TRIP_TEMPERATURE, type Conveyor, type Sensor, type Station } from './devices.js';

const SPEED_TAU_MS = 4000; // conveyor inertia
const THERMAL_TAU_MS = 60_000;
const WAIT_GRACE_MS = 3000; // a station waiting longer than this is STARVED or BLOCKED

/** What a step reads of the line (its clock and flow) and the finished-goods counts it adds to. */
export interface LineFloor {
  readonly elapsed: number;
  readonly stations: readonly Station[];
  goodCount: number;
  scrapCount: number;
}

export function stepConveyor(line: LineFloor, c: Conveyor, dt: number, lineRunning: boolean, speedFactor: number): void {
  if (c.overheatUntil >= 0 && c.overheatUntil <= line.elapsed) {
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
  const load = conveyorLoad(line, c);
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

function conveyorLoad(line: LineFloor, c: Conveyor): number {
  let parts = 0;
  let capacity = 0;
  for (const st of line.stations) {
    if (st.conveyor !== c || !st.output) continue;
    parts += st.output.count;
    capacity += st.output.capacity;
  }
  return capacity === 0 ? 0.5 : parts / capacity;
}

export function stepStation(line: LineFloor, st: Station, dt: number, scrapRate: number): void {
  if (st.jammedUntil >= 0 && st.jammedUntil <= line.elapsed && st.state === 'FAULT') {
    st.jammedUntil = -1;
    st.state = 'RUNNING';
    st.reason = undefined;
  }
  if (st.maintenanceUntil >= 0 && st.maintenanceUntil <= line.elapsed) {
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
        waitAt(st, dt, 'BLOCKED', 'downstream buffer full');
        return;
      }
      if (st.output) st.output.count++;
      else finishPart(line, st, scrapRate);
      st.finished = false;
      st.holding = false;
    }
    if (!st.holding) {
      if (st.input && st.input.count === 0) {
        waitAt(st, dt, 'STARVED', 'upstream buffer empty');
        return;
      }
      if (st.input) st.input.count--;
      st.holding = true;
      st.progress = 0;
    }
    const speed = st.conveyor.speed;
    if (speed < 1) {
      setStation(st, 'IDLE', 'conveyor not moving');
      return;
    }
    st.waitingMs = 0;
    setStation(st, 'RUNNING', undefined);
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
    if (st.output) countAtStation(st, scrapRate);
  }
}

/** Every station counts its own good and scrap parts; the last one also counts the line's output. */
function countAtStation(st: Station, scrapRate: number): void {
  const hot = st.conveyor.motorTemp > 80 ? 0.05 : 0;
  if (st.rng.next() < scrapRate + hot) st.scrap++;
  else st.good++;
}

function finishPart(line: LineFloor, st: Station, scrapRate: number): void {
  const before = st.scrap;
  countAtStation(st, scrapRate);
  if (st.scrap > before) line.scrapCount++;
  else line.goodCount++;
}

/** Waiting a moment for a part or for room is normal flow; only a longer wait is reported. */
function waitAt(st: Station, dt: number, state: 'BLOCKED' | 'STARVED', reason: string): void {
  st.waitingMs += dt;
  if (st.waitingMs >= WAIT_GRACE_MS || (st.state !== 'RUNNING' && st.state !== 'BLOCKED' && st.state !== 'STARVED')) setStation(st, state, reason);
}

function setStation(st: Station, state: DeviceState, reason: string | undefined): void {
  st.state = state;
  st.reason = reason;
}

export function stepSensor(line: LineFloor, s: Sensor, dt: number): void {
  if (s.driftUntil >= 0 && s.driftUntil <= line.elapsed) {
    s.driftRate = { temperature: 0, humidity: 0 };
    s.driftUntil = -1;
  }
  s.drift.temperature += (s.driftRate.temperature * dt) / 60_000;
  s.drift.humidity += (s.driftRate.humidity * dt) / 60_000;
  const daily = Math.sin(s.phase + (line.elapsed / 86_400_000) * 2 * Math.PI);
  s.temperature = AMBIENT + 1.5 * daily + 0.1 * s.rng.noise() + s.drift.temperature;
  s.humidity = Math.min(100, Math.max(0, 45 - 5 * daily + 0.3 * s.rng.noise() + s.drift.humidity));
  s.state = s.stopped ? 'STOPPED' : 'RUNNING';
}
