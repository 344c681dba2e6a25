// The rules engine's health(): each state it reports, each reached for real (real broker, real files).
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MqttBus } from '../../bus/mqtt.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { ManualClock } from '../../rules/clock.js';
import { RulesEngine } from '../../rules/engine.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { startFixture, T0, writeRules, type Fixture } from './fixture.js';

const HOT = `rules:
  - id: hot
    match: { device: m }
    when: values.temp > 80
    actions: [{ alert: { severity: warning, message: "{device} hot" } }]
`;

const cleanups: (() => Promise<void> | void)[] = [];
let fixture: Fixture | undefined;
afterEach(async () => {
  await fixture?.stop();
  fixture = undefined;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-rules-health-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function testBroker(): Promise<TestBroker> {
  const broker = await startTestBroker({ open: true, wsPort: null });
  let stopped = false;
  cleanups.push(async () => {
    if (!stopped) await broker.stop();
  });
  return { ...broker, stop: async () => ((stopped = true), await broker.stop()) };
}

describe('rules engine health', () => {
  it('ok once started; down, not running, once stopped; the gauges are named', async () => {
    fixture = await startFixture(HOT);
    expect(fixture.engine.health()).toEqual({ status: 'ok', reasons: [] });
    expect([...fixture.engine.gauges]).toEqual(expect.arrayContaining(['active_instances', 'pending_commands', 'suspended_rules', 'load_errors', 'connected']));
    expect(Object.keys(fixture.engine.counters())).toEqual(expect.arrayContaining([...fixture.engine.gauges].filter((key) => key !== 'restored_instances')));
    await fixture.engine.stop();
    expect(fixture.engine.health()).toEqual({ status: 'down', reasons: ['the rules engine is not running'] });
  });

  it('down when it cannot start: a broken rule file, named in the reason', async () => {
    const broker = await testBroker();
    const dir = tempDir();
    writeFileSync(join(dir, 'rules.yaml'), 'rules:\n  - id: broken\n    when: values.t >\n    actions: [{ alert: { message: m } }]\n');
    const engine = new RulesEngine({ bus: broker.broker.bus, dir, clock: new ManualClock(T0), watch: false });
    await expect(engine.start()).rejects.toThrow(/error\(s\) in/);
    const health = engine.health();
    expect(health.status).toBe('down');
    expect(health.reasons).toEqual([expect.stringMatching(/^the rules engine could not start: rules: 1 error\(s\) in /)]);
  });

  it('degraded while a reload left errors (the last good rules run); ok again once fixed', async () => {
    fixture = await startFixture(HOT);
    writeRules(fixture, 'rules:\n  - id: hot\n    when: values.temp >\n    actions: [{ alert: { message: m } }]\n');
    expect(fixture.engine.reload()).toHaveLength(1);
    const health = fixture.engine.health();
    expect(health.status).toBe('degraded');
    expect(health.reasons).toEqual([`1 error(s) in the rule files of ${fixture.dir}; each broken rule keeps its last good version, the others run as written (check with: linewatch rules check ${fixture.dir})`]);
    expect(fixture.engine.counters().load_errors).toBe(1);
    writeRules(fixture, HOT);
    expect(fixture.engine.reload()).toEqual([]);
    expect(fixture.engine.health().status).toBe('ok');
  });

  it('degraded while the oscillation guard has a rule suspended; ok once the suspension ends', async () => {
    // A strategy flipped on a station's FAULT and back when it runs: energy-saving ↔ max-throughput, A→B→A reversals.
    fixture = await startFixture(`safety:\n  oscillation: { window: 60s, reversals: 3, suspendFor: 1m }\nrules:
  - id: flip
    match: { device: st-1, kind: state }
    when: state == "FAULT"
    actions: [{ command: { target: line-ctl, action: set_strategy, params: { strategy: energy-saving } } }]
    onClear: [{ command: { target: line-ctl, action: set_strategy, params: { strategy: max-throughput } } }]
`);
    fixture.autoAck('line-ctl');
    for (const state of ['FAULT', 'RUNNING', 'FAULT', 'RUNNING', 'FAULT']) {
      await fixture.state('st-1', state);
      await fixture.advance(2_000);
    }
    expect(fixture.engine.counters().rules_suspended).toBe(1);
    expect(fixture.engine.health()).toEqual({ status: 'degraded', reasons: ['rule(s) flip suspended by the oscillation guard; their commands are blocked'] });
    expect(fixture.engine.counters().suspended_rules).toBe(1);
    await fixture.advance(60_000);
    expect(fixture.engine.health().status).toBe('ok');
    expect(fixture.engine.counters().suspended_rules).toBe(0);
  });

  it('degraded while the rules folder is missing; ok once it appears and is loaded', async () => {
    const broker = await testBroker();
    const dir = join(tempDir(), 'not-yet');
    const clock = new ManualClock(T0);
    const engine = new RulesEngine({ bus: broker.broker.bus, dir, clock, watch: false, settings: { tickMs: 100 } });
    cleanups.push(() => engine.stop());
    await engine.start();
    expect(engine.health()).toEqual({ status: 'degraded', reasons: [`the rules folder ${dir} does not exist; no rules run until it does`] });
    mkdirSync(dir);
    writeFileSync(join(dir, 'rules.yaml'), HOT);
    await clock.advance(2_100);
    expect(engine.rules().rules.map((rule) => rule.id)).toEqual(['hot']);
    expect(engine.health().status).toBe('ok');
  });

  it('down while its MQTT bus has lost the broker', async () => {
    const broker = await testBroker();
    const bus = await MqttBus.connect(broker.url, { clientId: `rules-health-${process.pid}`, reconnectPeriod: 60_000 });
    cleanups.push(() => withTimeout(bus.close(), 5_000, 'the MQTT bus to close'));
    const engine = new RulesEngine({ bus, dir: tempDir(), clock: new ManualClock(T0), watch: false });
    cleanups.push(() => engine.stop());
    await engine.start();
    expect(engine.health().status).toBe('ok');
    expect(engine.counters().connected).toBe(1);
    await broker.stop();
    const health = await waitFor(() => (engine.health().status === 'down' ? engine.health() : undefined), 10_000, 'the engine to report the lost broker');
    expect(health.reasons).toEqual(['the rules engine is not connected to the broker: no device events in, no commands out (it reconnects by itself)']);
    expect(engine.counters().connected).toBe(0);
  });
});
