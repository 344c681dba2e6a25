// Durable state across a restart, and hot reload of rule files.
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../lib/wait.js';
import { RulesEngine } from '../../rules/engine.js';
import { startFixture, writeRules, type Fixture } from './fixture.js';

let f: Fixture | undefined;
afterEach(async () => {
  await f?.stop();
  f = undefined;
});

const RULES = `safety:
  defaults: { minDwell: 30s }
rules:
  - id: overheat
    match: { device: conv-1 }
    when: values.temp > 80
    for: 10s
    clear: values.temp < 70
    actions:
      - command: { target: ctl, action: set_speed, params: { speed: 40 } }
      - alert: { message: hot }
  - id: avg
    match: { device: s1 }
    window: { of: values.v, count: 3 }
    when: avg >= 10 && count == 3
    actions: [{ alert: { message: "avg {avg}" } }]
`;

describe('durable state', () => {
  it('restores a running `for` timer, window contents, an active alert and setpoints after a restart', async () => {
    f = await startFixture(RULES);
    f.autoAck('ctl');
    await f.telemetry('s1', { v: 15 });
    await f.telemetry('s1', { v: 15 });
    await f.telemetry('conv-1', { temp: 85 });
    await f.advance(4_000);
    await f.restart();
    expect(existsSync(f.stateFile)).toBe(true);
    expect(f.engine.counters().restored_instances).toBe(2);
    // The `for` timer keeps counting from before the restart: 6 more seconds, not 10.
    await f.advance(6_200);
    expect(f.alerts.map((a) => [a.id, a.state])).toEqual([['overheat:A/conv-1', 'raised']]);
    expect(f.commands.map((c) => c.params.speed)).toEqual([40]);
    // The window kept its two samples: one more makes avg (15+15+0)/3 = 10.
    await f.telemetry('s1', { v: 0 });
    expect(f.alerts.at(-1)).toMatchObject({ id: 'avg:A/s1', message: 'avg 10' });

    // Restart with the alert active: it clears (once) after the restart, and the dwell still holds.
    await f.restart();
    await f.telemetry('conv-1', { temp: 60 });
    expect(f.alerts.filter((a) => a.id === 'overheat:A/conv-1').map((a) => a.state)).toEqual(['raised', 'cleared']);
    await f.telemetry('conv-1', { temp: 90 });
    await f.advance(10_200);
    expect(f.alerts.filter((a) => a.id === 'overheat:A/conv-1').map((a) => a.state)).toEqual(['raised', 'cleared', 'raised']);
    expect(f.outcomes.filter((o) => o.outcome === 'blocked')).toHaveLength(0);
    expect(f.commands.map((c) => c.params.speed)).toEqual([40]); // the same setpoint (40) again: the device has it, nothing to send
  });

  it('drops restored state of a rule whose definition changed', async () => {
    f = await startFixture(RULES);
    await f.telemetry('conv-1', { temp: 85 });
    await f.advance(4_000);
    await f.engine.stop();
    writeRules(f, RULES.replace('for: 10s', 'for: 20s'));
    f.engine = new RulesEngine({ bus: f.broker.broker.bus, dir: f.dir, stateFile: f.stateFile, clock: f.clock, watch: false });
    await f.engine.start();
    expect(f.engine.counters().restored_instances).toBe(0);
    const saved = JSON.parse(readFileSync(f.stateFile, 'utf8')) as { instances: { ruleId: string }[] };
    expect(saved.instances.map((i) => i.ruleId)).toContain('overheat');
  });
});

describe('hot reload', () => {
  it('picks up an edited file; a broken edit keeps the last good rules running and says why', async () => {
    f = await startFixture(RULES);
    // A watching engine on the same folder (the fixture's does not watch).
    const watching = new RulesEngine({ bus: f.broker.broker.bus, dir: f.dir, clock: f.clock, settings: { reloadDebounceMs: 50 } });
    await watching.start();
    try {
      writeRules(f, RULES.replace('values.temp > 80', 'values.temp > 50'));
      await waitFor(() => watching.counters().reloads! >= 1, 5_000, 'the reload after an edit');
      expect(watching.rules().rules.find((r) => r.id === 'overheat')).toBeDefined();
      expect(watching.rules().errors).toEqual([]);
      const reloads = watching.counters().reloads!;
      writeRules(f, RULES.replace('values.temp > 80', 'values.temp >'));
      await waitFor(() => watching.counters().reloads! > reloads, 5_000, 'the reload after a broken edit');
      expect(watching.counters().reload_errors).toBeGreaterThanOrEqual(1);
      expect(watching.rules().rules.map((r) => r.id)).toEqual(['overheat', 'avg']);
      expect(watching.rules().errors[0]).toMatchObject({ file: 'rules.yaml', line: 6, ruleId: 'overheat' });
    } finally {
      await watching.stop();
    }
  });

  it('refuses to start with a broken rules folder, listing every error', async () => {
    f = await startFixture(RULES);
    writeRules(f, 'rules:\n  - id: x\n    when: values.a >\n    actions: [{ alert: { message: m } }]\n', 'broken.yaml');
    const e = new RulesEngine({ bus: f.broker.broker.bus, dir: f.dir, clock: f.clock, watch: false });
    await expect(e.start()).rejects.toThrow(/1 error\(s\) in .*\n {2}broken\.yaml:3 \[x\]: when: .*cannot parse/);
  });
});
