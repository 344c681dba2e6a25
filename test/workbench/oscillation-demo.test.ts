// The oscillation guard on the demo line, in simulated time on the linewatch broker: the old
// overheat rule (slow down to 15, restore at 70 °C) makes a ~110 s limit cycle that the shipped
// example settings must catch; the shipped rule must settle without tripping the guard.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { CommandPayload } from '../../contracts/schemas.js';
import { loadScenarioFile } from '../../simulators/scenario.js';
import { runScenario, type ScenarioRunResult, type TimelineEntry } from '../../workbench/scenario-run.js';

const EXAMPLE_FILE = fileURLToPath(new URL('../../rules/examples/demo-line.yaml', import.meta.url));
const DEMO = fileURLToPath(new URL('../../simulators/scenarios/demo.yaml', import.meta.url));
const OVERHEAT = 'conveyor-overheat';

interface ExampleFile {
  safety: { oscillation: { suspendFor: string } };
  rules: Record<string, unknown>[];
}

/** The overheat rule as it was on main: 15 m/min, restored at 70 °C — it cools, restores, heats again. */
const CYCLING_OVERHEAT = {
  id: OVERHEAT,
  priority: 20,
  match: { line: 'A', device: 'conv-*', type: 'conveyor', kind: 'telemetry' },
  when: 'values.motorTemp > 80',
  for: '10s',
  clear: 'values.motorTemp < 70',
  actions: [
    { command: { target: 'line-ctl', action: 'set_speed', params: { speed: 15 } } },
    { alert: { severity: 'warning', message: '{device} motor at {values.motorTemp} °C: line slowed to 15 m/min' } },
  ],
  onClear: [{ command: { target: 'line-ctl', action: 'set_speed', params: { speed: 40 } } }],
};

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function readExamples(): ExampleFile {
  return parse(readFileSync(EXAMPLE_FILE, 'utf8')) as ExampleFile;
}

/** The shipped example file (its safety section as is) with the overheat rule replaced, in a temp folder. */
function examplesWith(overheat: Record<string, unknown>): string {
  const examples = readExamples();
  const index = examples.rules.findIndex((rule) => rule.id === OVERHEAT);
  expect(index, `rules/examples/demo-line.yaml has a rule ${OVERHEAT}`).toBeGreaterThanOrEqual(0);
  examples.rules[index] = overheat;
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-osc-demo-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'demo-line.yaml'), stringify(examples));
  return dir;
}

function runDemo(dir: string): Promise<ScenarioRunResult> {
  return runScenario({ dir, scenario: loadScenarioFile(DEMO), seed: 1 });
}

type Sent = { at: number; command: CommandPayload };

function commandsTo(timeline: TimelineEntry[], target: string, action?: string): Sent[] {
  const sent: Sent[] = [];
  for (const { at, event } of timeline) if (event.type === 'command' && event.target === target && (!action || event.command.action === action)) sent.push({ at, command: event.command });
  return sent;
}

function alertsWithId(timeline: TimelineEntry[], id: string): { at: number; state: string }[] {
  return timeline.flatMap(({ at, event }) => (event.type === 'alert' && event.alert.id === id ? [{ at, state: event.alert.state }] : []));
}

const speedOf = (sent: Sent | undefined): unknown => sent?.command.params.speed;

describe('the oscillation guard on the demo line', () => {
  it('the old (cycling) overheat rule: the ~110 s limit cycle is detected with the example settings, the rule suspended holding the lower speed, resumed after suspendFor and its alert cleared', async () => {
    const { timeline } = await runDemo(examplesWith(CYCLING_OVERHEAT));
    const suspensions = timeline.filter(({ event }) => event.type === 'suspended' && event.ruleId === OVERHEAT);
    expect(suspensions.length, 'the guard suspends the overheat rule').toBeGreaterThanOrEqual(1);
    const suspendedAt = suspensions[0]!.at;
    const alerts = alertsWithId(timeline, `oscillation:${OVERHEAT}`);
    expect(alerts[0]).toEqual({ at: suspendedAt, state: 'raised' });
    // Cleared when suspendFor (the example's 5m) ends — within one 100 ms step of the run.
    const cleared = alerts.find((alert) => alert.state === 'cleared');
    expect(cleared, 'the oscillation alert clears when the suspension ends').toBeDefined();
    expect(readExamples().safety.oscillation.suspendFor).toBe('5m');
    expect(cleared!.at - suspendedAt).toBeGreaterThanOrEqual(300_000);
    expect(cleared!.at - suspendedAt).toBeLessThanOrEqual(300_100);
    // While suspended the speed only goes down (the lower, safer one is held); the rule's other commands are blocked.
    const speeds = commandsTo(timeline, 'line-ctl', 'set_speed');
    const before = speeds.filter((sent) => sent.at < suspendedAt).at(-1);
    const during = speeds.filter((sent) => sent.at >= suspendedAt && sent.at < cleared!.at);
    let last = speedOf(before) as number;
    for (const sent of during) {
      expect(sent.command.params.speed as number).toBeLessThanOrEqual(last);
      last = sent.command.params.speed as number;
    }
    expect(last).toBe(15);
    const blocked = timeline.filter(({ at, event }) => at >= suspendedAt && at < cleared!.at && event.type === 'outcome' && event.outcome.outcome === 'blocked');
    expect(blocked.length).toBeGreaterThan(0);
    for (const { event } of blocked) expect(event.type === 'outcome' && event.outcome.reason).toMatch(/^suspended: /);
    // Resumed from the current conditions: conv-2 has cooled, so the rule's onClear (40 m/min) goes out again.
    const after = speeds.filter((sent) => sent.at >= cleared!.at);
    expect(after[0]?.at).toBe(cleared!.at);
    expect(after[0]?.command.origin).toBe(`rule:${OVERHEAT}`);
    expect(speedOf(after.at(-1))).toBe(40);
  });

  it('the shipped example rules settle: the line reacts to the overheat and the jam, at most 12 commands to line-ctl, no oscillation alert, back to 40 m/min in max-throughput', async () => {
    const { timeline } = await runDemo(fileURLToPath(new URL('../../rules/examples', import.meta.url)));
    const toController = commandsTo(timeline, 'line-ctl');
    const speeds = commandsTo(timeline, 'line-ctl', 'set_speed');
    // Reacts: conv-2's overheat slows the line; st-3's jam stops its feeder st-2 and starts it again.
    expect(Math.min(...speeds.map((sent) => sent.command.params.speed as number))).toBeLessThan(40);
    expect(commandsTo(timeline, 'st-2').map((sent) => sent.command.action)).toEqual(['stop', 'start']);
    // Settles: one slowdown and one restore (each a ramp of ≤ 20 % steps) and the strategy switch and back.
    expect(toController.length, `commands to line-ctl: ${toController.map((sent) => JSON.stringify(sent.command.params)).join(' ')}`).toBeLessThanOrEqual(12);
    expect(timeline.some(({ event }) => event.type === 'suspended')).toBe(false);
    expect(timeline.some(({ event }) => event.type === 'alert' && event.alert.id.startsWith('oscillation:'))).toBe(false);
    expect(speedOf(speeds.at(-1))).toBe(40);
    expect(commandsTo(timeline, 'line-ctl', 'set_strategy').at(-1)?.command.params.strategy).toBe('max-throughput');
    const done = new Set(timeline.flatMap(({ event }) => (event.type === 'outcome' && event.outcome.outcome === 'done' ? [event.outcome.id] : [])));
    expect(toController.every((sent) => done.has(sent.command.id))).toBe(true);
  });
});
