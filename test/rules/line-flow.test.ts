// Rules for a whole line on a real broker: the shipped station-jam-stops-feeder rule (one rule
// for every station pair, through upstream() and lines.A's flow), a target that is none at run
// time, a cross-device condition with device("…"), and a state file written under the old four
// rule ids read back by the new rule set.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LOG_LIMIT_DEFAULTS } from '../../lib/log-limit.js';
import { logToFile, rootLogger } from '../../lib/log.js';
import { startFixture, writeRules, type Fixture } from './fixture.js';

const EXAMPLES = readFileSync(fileURLToPath(new URL('../../rules/examples/demo-line.yaml', import.meta.url)), 'utf8');
const STATIONS = ['st-1', 'st-2', 'st-3', 'st-4', 'st-5'];

const logDir = mkdtempSync(join(tmpdir(), 'lw-line-flow-logs-'));
const logFile = join(logDir, 'linewatch.log');
const previousLevel = rootLogger.level;
beforeAll(() => {
  logToFile(logFile);
  rootLogger.level = 'info';
});
afterAll(() => {
  rootLogger.level = previousLevel;
  rmSync(logDir, { recursive: true, force: true });
});

function logMessages(msg: RegExp): string[] {
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { msg: string }).msg)
    .filter((m) => msg.test(m));
}

let f: Fixture | undefined;
afterEach(async () => {
  await f?.stop();
  f = undefined;
});

const stationCommands = (fixture: Fixture): string[] => fixture.commands.filter((c) => c.target.startsWith('st-')).map((c) => `${c.target} ${c.action}`);

async function runningLine(fixture: Fixture): Promise<void> {
  for (const station of STATIONS) {
    fixture.autoAck(station);
    await fixture.state(station, 'RUNNING', { type: 'station' });
  }
}

describe('station-jam-stops-feeder (rules/examples)', () => {
  it('a jam at st-3 stops st-2 and starts it when cleared; a jam at st-1 does nothing: nothing feeds it', async () => {
    f = await startFixture(EXAMPLES);
    await runningLine(f);
    await f.state('st-3', 'FAULT');
    expect(stationCommands(f)).toEqual(['st-2 stop']);
    expect(f.alerts.at(-1)).toMatchObject({ id: 'station-jam-stops-feeder:A/st-3', state: 'raised', device: 'st-3', message: 'st-3 undefined: feeder st-2 stopped' });
    await f.advance(6000); // the stop's minDwell (5 s) holds the start back until it has passed
    await f.state('st-3', 'RUNNING');
    await f.advance(6000);
    expect(stationCommands(f)).toEqual(['st-2 stop', 'st-2 start']);

    await f.state('st-5', 'FAULT');
    expect(stationCommands(f)).toEqual(['st-2 stop', 'st-2 start', 'st-4 stop']);
    await f.state('st-1', 'FAULT');
    await f.advance(1000);
    expect(stationCommands(f)).toEqual(['st-2 stop', 'st-2 start', 'st-4 stop']);
    expect(f.alerts.filter((a) => a.device === 'st-1')).toEqual([]);
    expect(f.engine.counters()).toMatchObject({ targets_none: 0, bad_targets: 0 });
  });
});

describe('a command target that is none at run time', () => {
  it('is counted and logged at a bounded rate, never sent; the rule still raises and clears its alert', async () => {
    f = await startFixture(`lines:
  A: { flow: [st-1, st-2] }
rules:
  - id: stop-feeder
    match: { line: A, device: "st-*", kind: state }
    transition: { to: FAULT }
    actions:
      - command: { target: "{upstream(device)}", action: stop }
      - alert: { message: "{device} jammed" }
    onClear: [{ command: { target: "{upstream(device)}", action: start } }]
`);
    await runningLine(f);
    const jams = 30;
    for (let i = 0; i < jams; i++) {
      await f.state('st-1', 'FAULT');
      await f.state('st-1', 'RUNNING');
    }
    expect(f.commands).toEqual([]);
    // Each jam: its command when it fires, its onClear command when it clears.
    expect(f.engine.counters()).toMatchObject({ targets_none: 2 * jams, bad_targets: 0, alerts_raised: jams, alerts_cleared: jams });
    expect(f.engine.health().status).toBe('ok');
    const lines = logMessages(/rule stop-feeder \(A\/st-1\): its command target evaluates to none/);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(LOG_LIMIT_DEFAULTS.linesPerInterval);
    // The same rule on st-2 has a feeder.
    await f.state('st-2', 'FAULT');
    expect(f.commands.map((c) => `${c.target} ${c.action}`)).toEqual(['st-1 stop']);
  });
});

describe('a cross-device condition', () => {
  it('fires on another device’s reading (device("conv-1")) and on the upstream station’s state; unknown until that device has spoken', async () => {
    f = await startFixture(`lines:
  A: { flow: [st-1, st-2] }
rules:
  - id: conveyor-hot-at-station
    match: { line: A, device: st-2, kind: telemetry }
    when: device("conv-1").values.motorTemp > 80
    actions: [{ alert: { message: "{device}: conv-1 at {device(\\"conv-1\\").values.motorTemp} °C" } }]
  - id: feeder-blocked
    match: { line: A, device: "st-*", kind: telemetry }
    when: device(upstream(device)).state == "BLOCKED"
    actions: [{ alert: { message: "{device}: its feeder {upstream(device)} is blocked" } }]
`);
    await f.telemetry('st-2', { cycleTime: 5 });
    expect(f.alerts).toEqual([]); // conv-1 never reported, st-1 neither: unknown, nothing fires
    await f.telemetry('conv-1', { motorTemp: 85 });
    await f.state('st-1', 'BLOCKED');
    await f.telemetry('st-1', { cycleTime: 5 }); // st-1 has no upstream: device(none) is unknown
    await f.telemetry('st-2', { cycleTime: 5 });
    expect(f.alerts.map((a) => `${a.id} ${a.state} ${a.message}`)).toEqual([
      'conveyor-hot-at-station:A/st-2 raised st-2: conv-1 at 85 °C',
      'feeder-blocked:A/st-2 raised st-2: its feeder st-1 is blocked',
    ]);
    await f.telemetry('conv-1', { motorTemp: 50 });
    await f.state('st-1', 'RUNNING');
    await f.telemetry('st-2', { cycleTime: 5 });
    expect(f.alerts.slice(2).map((a) => `${a.id} ${a.state}`)).toEqual(['conveyor-hot-at-station:A/st-2 cleared', 'feeder-blocked:A/st-2 cleared']);
  });
});

describe('a state file written under the four old st-N-jam-stops-feeder ids', () => {
  const oldRule = (station: number): string => `  - id: st-${station}-jam-stops-feeder
    priority: 30
    match: { line: A, device: st-${station}, kind: state }
    transition: { to: FAULT }
    actions:
      - command: { target: st-${station - 1}, action: stop }
      - alert: { severity: critical, message: "st-${station} {reason}: feeder st-${station - 1} stopped" }
    onClear: [{ command: { target: st-${station - 1}, action: start } }]
`;

  it('is read back by the rewritten examples: the old ids are dropped with a log line, and the new rule takes over', async () => {
    f = await startFixture(`rules:\n${[2, 3, 4, 5].map(oldRule).join('')}`);
    await runningLine(f);
    await f.state('st-3', 'FAULT');
    expect(stationCommands(f)).toEqual(['st-2 stop']);
    writeRules(f, EXAMPLES);
    await f.restart(); // stop writes the state file with st-3-jam-stops-feeder active; the new engine reads it
    expect(f.engine.counters()).toMatchObject({ restored_instances: 0 });
    expect(logMessages(/rules state: rule st-3-jam-stops-feeder is not loaded any more \(renamed or removed\); its 1 saved instance\(s\) dropped/)).toHaveLength(1);
    expect(f.engine.rules().rules.map((r) => r.id)).toContain('station-jam-stops-feeder');
    await f.advance(6000);
    await f.state('st-4', 'FAULT');
    expect(stationCommands(f)).toEqual(['st-2 stop', 'st-3 stop']);
    expect(f.engine.health().status).toBe('ok');
  });
});
