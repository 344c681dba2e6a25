// `linewatch rules check | test | --broker` with the built CLI (dist/), as a user runs them.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { run } from '../harness/mosquitto-clients.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

const BIN = fileURLToPath(new URL('../../bin/linewatch.js', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const EXAMPLES = fileURLToPath(new URL('../../rules/examples', import.meta.url));
const DEMO = fileURLToPath(new URL('../../simulators/scenarios/demo.yaml', import.meta.url));

let dir: string;
beforeAll(() => {
  if (!existsSync(BUILT)) throw new Error('dist/ is missing: run `npm run build` before these tests (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'linewatch-rules-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const linewatch = (...args: string[]) => run(process.execPath, [BIN, ...args], 60_000);

describe('linewatch rules check', () => {
  it('accepts the example rules', async () => {
    const r = await linewatch('rules', 'check', EXAMPLES);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/4 rules OK \(conveyor-overheat, station-jam-stops-feeder/);
    const onDemo = await linewatch('rules', 'check', EXAMPLES, '--scenario', DEMO);
    expect(onDemo.code, onDemo.stderr).toBe(0);
    expect(onDemo.stdout).toMatch(/4 rules OK \(conveyor-overheat, .*\); targets checked against the 11 devices of line A/);
  });

  it('exits 1 and names file:line and rule id for each error', async () => {
    const bad = join(dir, 'bad');
    rmSync(bad, { recursive: true, force: true });
    mkdirSync(bad);
    writeFileSync(join(bad, 'a.yaml'), 'rules:\n  - id: ok\n    when: values.t > 1\n    actions: [{ alert: { message: m } }]\n  - id: typo\n    when: valus.t > 1\n    actions: [{ alert: { message: m } }]\n');
    writeFileSync(join(bad, 'b.yaml'), 'rules:\n  - id: slow\n    when: values.t > 1\n    for: 3 parsecs\n    actions: [{ alert: { message: m } }]\n');
    const r = await linewatch('rules', 'check', bad);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('a.yaml:6 [typo]: when: unknown name "valus"');
    expect(r.stderr).toContain('b.yaml:4 [slow]: rules.0.for: expected a duration');
    expect(r.stderr).toContain('2 error(s)');
  });

  it('prints every kind of error of both files in one run, each at the line of its key, with the devices of a scenario', async () => {
    const bad = join(dir, 'five');
    rmSync(bad, { recursive: true, force: true });
    mkdirSync(bad);
    writeFileSync(
      join(bad, 'a.yaml'),
      `rules:
  - id: hot
    match: { line: A, device: "conv-*" }
    when: values.motorTemp > 80
    actions:
      - command: { target: line-ctl, action: set_sped, params: { speed: 15 } }
  - id: typo
    when: valus.motorTemp > 80
    actions: [{ alert: { message: hot } }]
  - id: wrong-device
    when: values.motorTemp > 80
    actions: [{ command: { target: "{devce}", action: stop } }]
`,
    );
    writeFileSync(
      join(bad, 'b.yaml'),
      `rules:
  - id: ghost
    match: { line: A }
    when: values.motorTemp > 80
    priorty: 3
    actions:
      - command: { target: line-ctrl, action: stop }
  - id: hot
    when: values.motorTemp > 90
    actions: [{ alert: { message: "{device} hot" } }]
`,
    );
    const r = await linewatch('rules', 'check', bad, '--scenario', DEMO);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      'a.yaml:6 [hot]: rules.0.actions.0.command.action: unknown action "set_sped"; use one of set_speed, set_strategy, stop, start, reset_fault',
      expect.stringMatching(/^a\.yaml:8 \[typo\]: when: unknown name "valus" in "valus\.motorTemp > 80"; available: device, line, /),
      expect.stringMatching(/^a\.yaml:12 \[wrong-device\]: actions\.0\.command\.target: unknown name "devce" in "\{devce\}"; available: device, line, /),
      expect.stringMatching(/^b\.yaml:5 \[ghost\]: rules\.0\.priorty: unknown key; use one of id, description, /),
      'b.yaml:7 [ghost]: actions.0.command.target: no device "line-ctrl" on line A; its devices are line-ctl, conv-1, conv-2, conv-3, st-1, st-2, st-3, st-4, st-5, env-1, env-2',
      'b.yaml:8 [hot]: duplicate rule id; already defined in a.yaml:2 — rename one (only the first is loaded)',
      `6 error(s) in ${bad}`,
    ]);
    // Without a device list the target check is skipped (and --help says so); everything else is still found.
    const withoutDevices = await linewatch('rules', 'check', bad);
    expect(withoutDevices.stderr).not.toContain('line-ctrl');
    expect(withoutDevices.stderr).toContain('5 error(s)');
    // The standalone engine refuses to start with the same list (before it connects to any broker).
    const engine = await linewatch('rules', '--broker', 'mqtt://127.0.0.1:1', '--dir', bad, '--no-health');
    expect(engine.code).toBe(1);
    expect(engine.stderr).toContain(`5 error(s) in ${bad}`);
    expect(engine.stderr).toContain('b.yaml:8 [hot]: duplicate rule id; already defined in a.yaml:2');
    const help = await linewatch('rules', 'check', '--help');
    expect(help.stdout).toMatch(/Without --scenario, literal\s+targets\s+and\s+device\("…"\)\s+ids\s+are\s+checked\s+only/);
  });
});

describe('linewatch rules check: rules for a whole line', () => {
  it('names a bad flow, an unknown device("…") id and a flow the simulated line does not run, with file, line and key, in one run; rules test refuses the same', async () => {
    const bad = join(dir, 'flow');
    rmSync(bad, { recursive: true, force: true });
    mkdirSync(bad);
    writeFileSync(join(bad, 'lines.yaml'), 'lines:\n  A:\n    flow: [st-1, st-2, st-4, st-3]\n  B:\n    flow: [st-1, st-2, st-1]\n');
    writeFileSync(
      join(bad, 'rules.yaml'),
      `rules:
  - id: cross
    match: { line: A, device: st-2, kind: telemetry }
    when: device("conv-9").values.motorTemp > 80
    actions: [{ command: { target: "{upstream(device)}", action: stop } }]
`,
    );
    const r = await linewatch('rules', 'check', bad, '--scenario', DEMO);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      "lines.yaml:3: lines.A.flow: st-2 → st-4 here, but the scenario's line runs st-1 → st-2 → st-3 → st-4 → st-5; state the order the line has",
      'lines.yaml:5: lines.B.flow.2: "st-1" is already at flow.0: a device appears once in a flow (twice would make a cycle, and it would have two upstream neighbours)',
      'rules.yaml:4 [cross]: when: device("conv-9"): no device "conv-9" on line A; its devices are line-ctl, conv-1, conv-2, conv-3, st-1, st-2, st-3, st-4, st-5, env-1, env-2',
      `3 error(s) in ${bad}`,
    ]);
    const test = await linewatch('rules', 'test', bad, '--scenario', DEMO, '--duration', '1s');
    expect(test.code).toBe(1);
    expect(test.stderr).toContain('3 error(s)');
  });
});

describe('linewatch rules test', () => {
  it('prints the same timeline for the same seed, with the demo line’s alerts and commands', async () => {
    const a = await linewatch('rules', 'test', EXAMPLES, '--scenario', DEMO, '--seed', '1');
    const b = await linewatch('rules', 'test', EXAMPLES, '--scenario', DEMO, '--seed', '1');
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    const lines = a.stdout.split('\n');
    expect(lines.some((l) => /command .* st-2 stop \{\}\s+rule:station-jam-stops-feeder/.test(l))).toBe(true);
    expect(lines.some((l) => /alert\s+raised\s+warning\s+device-silent:A\/env-2/.test(l))).toBe(true);
    expect(lines.some((l) => /command .* line-ctl set_speed \{"speed":32\}\s+rule:conveyor-overheat/.test(l))).toBe(true);
    expect(lines.some((l) => /alert\s+cleared\s+warning\s+conveyor-overheat:A\/conv-2/.test(l))).toBe(true);
    expect(lines.at(-2)).toMatch(/# \d+ alerts raised, \d+ cleared; \d+ commands sent, \d+ done, 0 blocked, 0 expired/);
  }, 120_000); // two full demo runs: a bound for a loaded machine, not a speed check
});

describe('linewatch rules --broker', () => {
  let tb: TestBroker;
  beforeAll(async () => {
    tb = await startTestBroker({ wsPort: null });
    await tb.addAccount('rules-engine', 'rules-password', 'rules');
    await tb.addAccount('A/line-ctl', 'ctl-password', 'device');
    await tb.addAccount('A/conv-2', 'conv-password', 'device');
  });
  afterAll(async () => tb.stop());

  it('runs the engine against a broker: a hot conveyor gets the line controller a set_speed command over TCP; SIGTERM saves state', async () => {
    const stateFile = join(dir, 'state.json');
    // The second reading below is stamped 9 s ahead of now: more than the default rules.maxClockSkewMs allows.
    const configFile = join(dir, 'linewatch-skew.yaml');
    writeFileSync(configFile, 'rules:\n  maxClockSkewMs: 15000\n');
    const engine = spawn(process.execPath, [BIN, 'rules', '--broker', tb.url, '--config', configFile, '--dir', EXAMPLES, '--state-file', stateFile, '--username', 'rules-engine', '--password', 'rules-password', '--health-port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    engine.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    engine.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const ctl = mqtt.connect(tb.url, { username: 'A/line-ctl', password: 'ctl-password', clientId: 'A/line-ctl' });
    const conv = mqtt.connect(tb.url, { username: 'A/conv-2', password: 'conv-password', clientId: 'A/conv-2' });
    try {
      await waitFor(() => out.includes('Ctrl-C stops'), 20_000, `the engine to start (output: ${out})`);
      const commands: { id: string; action: string; params: Record<string, unknown> }[] = [];
      ctl.on('message', (_t, p) => {
        const cmd = JSON.parse(p.toString()) as { id: string; action: string; params: Record<string, unknown> };
        commands.push(cmd);
        ctl.publish('lw/A/line-ctl/cmd/ack', JSON.stringify({ id: cmd.id, result: 'done', ts: Date.now() }), { qos: 1 });
      });
      await ctl.subscribeAsync('lw/A/line-ctl/cmd', { qos: 1 });
      await ctl.publishAsync('lw/A/line-ctl/telemetry', JSON.stringify({ ts: Date.now(), seq: 1, values: { speedSetpoint: 40 } }), { qos: 1 });
      // 80+ °C for 10 s of device time: two readings 10 s apart (device time), sent now.
      const now = Date.now();
      await conv.publishAsync('lw/A/conv-2/telemetry', JSON.stringify({ ts: now - 1_000, seq: 1, type: 'conveyor', values: { motorTemp: 85 } }), { qos: 1 });
      await conv.publishAsync('lw/A/conv-2/telemetry', JSON.stringify({ ts: now + 9_000, seq: 2, type: 'conveyor', values: { motorTemp: 86 } }), { qos: 1 });
      await waitFor(() => commands.length >= 1, 10_000, 'the set_speed command at the line controller');
      expect(commands[0]).toMatchObject({ action: 'set_speed', params: { speed: 32 } });
      // The standalone runner's /healthz and /metrics, on the free port it printed.
      const endpoints = /\/healthz and \/metrics at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
      expect(endpoints, out).toBeDefined();
      const health = await fetch(`${endpoints}/healthz`);
      expect(health.status).toBe(200);
      const report = (await health.json()) as { status: string; services: Record<string, { status: string }> };
      expect(report.services.rules?.status).toBe(report.status);
      const metrics = await (await fetch(`${endpoints}/metrics`)).text();
      expect(metrics).toMatch(/^# TYPE linewatch_commands_sent counter$/m);
      expect(metrics).toMatch(/^linewatch_commands_sent\{service="rules"\} [1-9]/m);
    } finally {
      ctl.end(true);
      conv.end(true);
      engine.kill('SIGTERM');
      await withTimeout(new Promise((resolve) => engine.once('exit', resolve)), 15_000, 'the engine to exit after SIGTERM');
    }
    const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as { instances: { ruleId: string; phase: string }[] };
    expect(saved.instances).toContainEqual(expect.objectContaining({ ruleId: 'conveyor-overheat', phase: 'active' }));
  });
});
