// The line model on its simulated clock: determinism, plausible physics, flow, commands, scenarios.
import { describe, expect, it } from 'vitest';
import { validateValue, type CommandPayload } from '../../contracts/index.js';
import { LineModel, TRIP_TEMPERATURE, layoutForDeviceCount, type SimEvent } from '../../simulators/model.js';
import { loadDemoScenario, parseScenario, parseScenarioYaml } from '../../simulators/scenario.js';

const START = Date.UTC(2026, 0, 1);

function run(seed: number, seconds: number, scenario = loadDemoScenario()): { model: LineModel; events: SimEvent[] } {
  const model = new LineModel({ seed, scenario, startTime: START });
  const events: SimEvent[] = [];
  for (let t = 0; t < seconds; t++) events.push(...model.advance(1000));
  return { model, events };
}

function cmd(action: CommandPayload['action'], params: CommandPayload['params'] = {}, id = `c-${action}`, expiresAt = START + 3_600_000): CommandPayload {
  return { id, action, params, origin: 'test', ts: START, expiresAt };
}

function messages(events: SimEvent[], device: string, kind: string) {
  return events.filter((e) => e.type === 'message' && e.device === device && e.kind === kind).map((e) => (e as { payload: Record<string, unknown> }).payload);
}

describe('LineModel', () => {
  it('is deterministic: same seed, same output; another seed differs', () => {
    const a = JSON.stringify(run(7, 120).events);
    const b = JSON.stringify(run(7, 120).events);
    const c = JSON.stringify(run(8, 120).events);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });

  it('emits messages that follow the contract, with per-device seq +1 and device time', () => {
    const { events } = run(1, 30);
    const seqs = new Map<string, number>();
    for (const e of events) {
      if (e.type !== 'message') continue;
      const v = validateValue(e.kind, e.payload);
      expect(v.ok, v.ok ? '' : v.error).toBe(true);
      const prev = seqs.get(e.device) ?? -1;
      expect(e.payload.seq).toBe(prev + 1);
      seqs.set(e.device, e.payload.seq!);
      expect(e.payload.ts).toBeGreaterThanOrEqual(START);
      expect(e.payload.ts).toBeLessThanOrEqual(START + 30_000);
    }
    expect(seqs.size).toBe(1 + 3 + 5 + 2);
  });

  it('conveyors follow the setpoint with inertia and warm up with speed', () => {
    const scenario = parseScenario({ speed: 40 });
    const model = new LineModel({ seed: 1, scenario, startTime: START });
    model.advance(1000);
    const early = model.snapshot('conv-1')!.values.speed!;
    expect(early).toBeGreaterThan(0);
    expect(early).toBeLessThan(20); // not instantly at 40
    model.advance(60_000);
    expect(model.snapshot('conv-1')!.values.speed).toBeCloseTo(40, 0);
    const warm = model.snapshot('conv-1')!.values.motorTemp!;
    expect(warm).toBeGreaterThan(30);
    expect(warm).toBeLessThan(TRIP_TEMPERATURE);
    model.command('conv-1', cmd('set_speed', { speed: 10 }));
    model.advance(300_000);
    expect(model.snapshot('conv-1')!.values.speed).toBeCloseTo(10, 0);
    expect(model.snapshot('conv-1')!.values.motorTemp).toBeLessThan(warm);
    expect(model.snapshot('st-5')!.values.goodCount).toBeGreaterThan(0);
  });

  it('a jam starves downstream stations and blocks upstream ones; it clears after its duration', () => {
    const { model, events } = run(3, 150); // jam at st-3 from 60 s to 150 s
    const states = (id: string) => messages(events, id, 'state').map((p) => p.state);
    expect(states('st-3')).toContain('FAULT');
    expect(states('st-4')).toContain('STARVED');
    expect(states('st-5')).toContain('STARVED');
    expect(states('st-2')).toContain('BLOCKED');
    expect(states('st-1')).toContain('BLOCKED');
    model.advance(30_000);
    expect(model.snapshot('st-3')!.state).not.toBe('FAULT');
  });

  it('an overheating conveyor trips at the limit unless slowed down in time', () => {
    const tripped = run(4, 600);
    expect(tripped.model.snapshot('conv-2')!.state).toBe('FAULT');
    const trip = messages(tripped.events, 'conv-2', 'state').find((p) => p.state === 'FAULT');
    expect(String(trip!.reason)).toMatch(/over temperature/);

    const model = new LineModel({ seed: 4, scenario: loadDemoScenario(), startTime: START });
    model.advance(60_000);
    const acks = model.command('conv-2', cmd('set_speed', { speed: 15 }));
    expect(acks.map((e) => e.type === 'message' && e.payload)).toMatchObject([{ result: 'accepted' }]);
    const later = model.advance(600_000);
    expect(messages(later, 'conv-2', 'ack')).toMatchObject([{ id: 'c-set_speed', result: 'done' }]);
    expect(model.snapshot('conv-2')!.state).toBe('RUNNING');
    expect(model.snapshot('conv-2')!.values.motorTemp).toBeLessThan(TRIP_TEMPERATURE);
  });

  it('obeys commands and rejects impossible or expired ones with a reason', () => {
    const model = new LineModel({ seed: 1, scenario: parseScenario({}), startTime: START });
    model.advance(5000);
    const answer = (device: string, c: CommandPayload) => model.command(device, c).map((e) => (e.type === 'message' ? e.payload : undefined));
    expect(answer('conv-1', cmd('set_speed', { speed: 80 }))).toMatchObject([{ result: 'rejected', reason: expect.stringMatching(/outside 0–60/) }]);
    expect(answer('st-1', cmd('set_speed', { speed: 20 }))).toMatchObject([{ result: 'rejected', reason: expect.stringMatching(/no speed/) }]);
    expect(answer('line-ctl', cmd('set_strategy', { strategy: 'warp' }))).toMatchObject([{ result: 'rejected' }]);
    expect(answer('conv-1', cmd('stop', {}, 'old', START))).toMatchObject([{ id: 'old', result: 'rejected', reason: expect.stringMatching(/expired/) }]);
    expect(answer('st-2', cmd('reset_fault'))).toMatchObject([{ result: 'rejected', reason: expect.stringMatching(/not in FAULT/) }]);
    expect(answer('line-ctl', cmd('set_strategy', { strategy: 'safe' }))).toMatchObject([{ result: 'accepted' }]);
    const controllerStates = messages(model.advance(1000), 'line-ctl', 'state');
    expect(controllerStates.at(-1)).toMatchObject({ type: 'line-controller', strategy: 'safe' });
    model.advance(59_000);
    expect(model.snapshot('conv-1')!.values.speed).toBeCloseTo(20, 0); // 40 m/min × 0.5 under `safe`
    expect(answer('st-2', cmd('stop'))).toMatchObject([{ result: 'accepted' }]);
    const after = model.advance(1000);
    expect(messages(after, 'st-2', 'ack')).toMatchObject([{ id: 'c-stop', result: 'done' }]);
    expect(model.snapshot('st-2')!.state).toBe('STOPPED');
  });

  it('silence and offline mute a device for their duration', () => {
    const scenario = parseScenario({ events: [{ at: '10s', silence: { device: 'env-1', duration: '20s' } }, { at: '10s', offline: { device: 'conv-1', duration: '5s' } }] });
    const { events } = run(1, 40, scenario);
    const sensorTimes = messages(events, 'env-1', 'telemetry').map((p) => (p.ts as number) - START);
    expect(sensorTimes.some((t) => t > 10_000 && t < 30_000)).toBe(false);
    expect(sensorTimes.some((t) => t >= 30_000)).toBe(true);
    expect(events.filter((e) => e.type === 'offline' || e.type === 'online').map((e) => e.type)).toEqual(['offline', 'online']);
  });

  it('splits a device count into a layout', () => {
    const layout = layoutForDeviceCount(5000);
    expect(1 + layout.conveyors + layout.stations + layout.sensors).toBe(5000);
    expect(new LineModel({ seed: 1, scenario: parseScenario({}), startTime: START, layout }).deviceIds()).toHaveLength(5000);
  });
});

describe('scenario files', () => {
  it('loads the demo scenario', () => {
    const s = loadDemoScenario();
    expect(s.layout).toMatchObject({ conveyors: 3, stations: 5, sensors: 2 });
    expect(s.events.map((e) => Object.keys(e).find((k) => k !== 'at'))).toEqual(['overheat', 'jam', 'drift', 'silence']);
  });

  it('names the key in errors', () => {
    expect(() => parseScenarioYaml('events:\n  - at: soon\n    jam: { station: st-1, duration: 5s }\n', 'x.yaml')).toThrow(/x\.yaml: invalid scenario: events\.0\.at: expected a duration/);
    expect(() => parseScenarioYaml('events:\n  - at: 5s\n    jam: { station: st-1 }\n', 'x.yaml')).toThrow(/events\.0\.jam\.duration/);
    expect(() => parseScenarioYaml('events:\n  - at: 5s\n', 'x.yaml')).toThrow(/events\.0: each event needs exactly one of/);
    expect(() => parseScenarioYaml('events:\n  - at: 5s\n    explode: {}\n', 'x.yaml')).toThrow(/explode/);
    expect(() => parseScenarioYaml('speed: [1\n', 'x.yaml')).toThrow(/YAML syntax error at line/);
    const wrongDevice = parseScenarioYaml('events:\n  - at: 5s\n    jam: { station: st-9, duration: 5s }\n');
    expect(() => new LineModel({ seed: 1, scenario: wrongDevice, startTime: START })).toThrow(/events\.0\.jam\.station: no device "st-9"/);
  });
});
