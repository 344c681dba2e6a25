// Two `linewatch rules` processes split by line (--lines A / --lines B, and --worker 1/2 / 2/2)
// on the embedded broker: a rule firing on a line is handled by that line's worker alone — one
// command, one alert — and an absence rule on line B does nothing in line A's worker. A third
// engine on a worker's state file is refused. A --lines worker with a shadow set (and authentication)
// fires its shadow command on its line. Runs the built CLI (dist/).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { runCli, runningChildren, startCliProcess, type CliProcess } from '../harness/cli-process.js';

const RULES = `
rules:
  - id: hot
    match: { device: "conv-*", kind: telemetry }
    when: values.motorTemp > 80
    actions:
      - command: { target: line-ctl, action: stop }
      - alert: { severity: warning, message: "{device} hot" }
  - id: silent-b
    match: { line: B }
    absent: { after: 1s, grace: 1s, devices: [ghost] }
    actions:
      - alert: { severity: warning, message: "{device} silent" }
`;

describe('rules workers split by line', () => {
  let tb: TestBroker;
  let dir: string;
  let observer: MqttClient;
  const devices: MqttClient[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lw-rules-workers-'));
    mkdirSync(join(dir, 'rules'));
    writeFileSync(join(dir, 'rules', 'rules.yaml'), RULES);
  });
  afterAll(async () => {
    for (const child of runningChildren) child.kill('SIGKILL');
    await Promise.all(devices.map((device) => device.endAsync()));
    await Promise.all([observer?.endAsync(), tb?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh broker (no retained alarms of an earlier case) and state dir, and an observer of every command and alert. */
  const setup = async (name: string): Promise<void> => {
    tb = await startTestBroker({ wsPort: null });
    await tb.addAccount('rules', 'rules-password', 'rules');
    await tb.addAccount('hist', 'hist-password', 'historian');
    for (const line of ['A', 'B']) for (const device of ['line-ctl', 'conv-1']) await tb.addAccount(`${line}/${device}`, `${device}-password`, 'device');
    writeFileSync(join(dir, 'linewatch.yaml'), `rules:\n  stateFile: ${join(dir, name, 'rules-state.json')}\n`);
    // The historian role reads lw/#.
    observer = await mqtt.connectAsync(tb.url, { username: 'hist', password: 'hist-password', clientId: 'hist:observer' });
    await observer.subscribeAsync(['lw/+/+/cmd', 'lw/+/alerts'], { qos: 1 });
  };

  const engine = (...worker: string[]): Promise<CliProcess> =>
    startCliProcess(['rules', '--broker', tb.url, '--username', 'rules', '--password', 'rules-password', '--dir', join(dir, 'rules'), '--config', join(dir, 'linewatch.yaml'), '--health-port', '0', ...worker], 'Ctrl-C stops');

  const device = async (line: string, id: string): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(tb.url, { username: `${line}/${id}`, password: `${id}-password`, clientId: `${line}/${id}` });
    devices.push(client);
    return client;
  };

  const metric = async (worker: CliProcess, name: string): Promise<number> => {
    const text = await (await fetch(`${worker.healthUrl}/metrics`)).text();
    return Number(new RegExp(`^linewatch_${name}\\{service="rules"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 'NaN');
  };

  it.each([
    { split: '--lines', a: ['--lines', 'A'], b: ['--lines', 'B'], aLines: 'A', bLines: 'B' },
    // Line A hashes to worker 1 of 2, line B to worker 2 (test/contracts/line-workers.unit.test.ts).
    { split: '--worker', a: ['--worker', '1/2'], b: ['--worker', '2/2'], aLines: 'hash 1/2', bLines: 'hash 2/2' },
  ])('$split: a rule firing on a line is handled by its worker alone', { timeout: 90_000 }, async ({ split, a, b, aLines, bLines }) => {
    await setup(split.slice(2));
    const commands: { line: string; id: string; action: string }[] = [];
    const alerts: { line: string; id: string; state: string }[] = [];
    const onMessage = (topic: string, payload: Buffer): void => {
      const [, line, device, kind] = topic.split('/');
      const message = JSON.parse(payload.toString()) as { id: string; action: string; state: string };
      if (kind === 'cmd') commands.push({ line: line!, id: message.id, action: message.action });
      else if (device === 'alerts') alerts.push({ line: line!, id: message.id, state: message.state });
    };
    observer.on('message', onMessage);
    const stateDir = join(dir, split.slice(2));
    const [workerA, workerB] = await Promise.all([engine(...a), engine(...b)]);
    try {
      expect(workerA.output()).toContain(`for lines: ${aLines}, state in ${join(stateDir, `rules-state.${a[0] === '--lines' ? 'lines-A' : 'worker-1-of-2'}.json`)}`);
      // Each line controller acknowledges its commands (so none is sent again for want of an ack).
      for (const line of ['A', 'B']) {
        const ctl = await device(line, 'line-ctl');
        ctl.on('message', (_topic, payload) => {
          const { id } = JSON.parse(payload.toString()) as { id: string };
          ctl.publish(`lw/${line}/line-ctl/cmd/ack`, JSON.stringify({ id, result: 'done', ts: Date.now() }), { qos: 1 });
        });
        await ctl.subscribeAsync(`lw/${line}/line-ctl/cmd`, { qos: 1 });
      }
      // Both lines get hot at once.
      for (const line of ['A', 'B']) {
        const conv = await device(line, 'conv-1');
        await conv.publishAsync(`lw/${line}/conv-1/telemetry`, JSON.stringify({ ts: Date.now(), seq: 1, type: 'conveyor', values: { motorTemp: 90 } }), { qos: 1 });
      }
      await waitFor(() => commands.length >= 2 && alerts.filter((alert) => alert.id === 'silent-b:B/ghost').length >= 1, 20_000, 'a stop command on each line and the silence alert of B/ghost');
      // Line A's engine is past the absence rule's grace (its own uptime), and still silent about B.
      await waitFor(async () => ((await (await fetch(`${workerA.healthUrl}/healthz`)).json()) as { uptimeMs: number }).uptimeMs > 3000, 10_000, "line A's engine to be up 3 s");
      await waitFor(async () => (await metric(workerA, 'commands_sent')) + (await metric(workerB, 'commands_sent')) >= 2, 10_000, 'both engines to count their command');
      expect(new Set(commands.filter((c) => c.line === 'A').map((c) => c.id)).size).toBe(1);
      expect(new Set(commands.filter((c) => c.line === 'B').map((c) => c.id)).size).toBe(1);
      expect(await metric(workerA, 'commands_sent')).toBe(1);
      expect(await metric(workerB, 'commands_sent')).toBe(1);
      expect(await metric(workerA, 'alerts_raised')).toBe(1); // hot on A; not silent-b
      expect(await metric(workerB, 'alerts_raised')).toBe(2); // hot on B, silent-b
      expect(alerts.filter((alert) => alert.state === 'raised').map((alert) => alert.id).sort()).toEqual(['hot:A/conv-1', 'hot:B/conv-1', 'silent-b:B/ghost']);
      const health = (await (await fetch(`${workerB.healthUrl}/healthz`)).json()) as { services: { rules: { info: Record<string, string> } } };
      expect(health.services.rules.info.lines).toBe(bLines);
      if (a[0] === '--lines') {
        expect(health.services.rules.info.subscription).toBe('lw/B/+/state lw/B/+/telemetry lw/B/+/status lw/B/+/cmd/ack lw/B/alarms/+ lw/B/alarms/+/set');
        // A third engine for line A would share worker A's state file: refused.
        const third = await runCli(['rules', '--broker', tb.url, '--username', 'rules', '--password', 'rules-password', '--dir', join(dir, 'rules'), '--config', join(dir, 'linewatch.yaml'), '--health-port', '0', '--client-id', 'rules:third', ...a]);
        expect(third.code).not.toBe(0);
        expect(third.output).toMatch(/the rules state file rules-state\.lines-A\.json in \S+ is in use by process \d+; give each rules engine/);
      } else {
        expect(await metric(workerA, 'skipped_other_worker')).toBeGreaterThan(0);
      }
    } finally {
      await Promise.all([workerA.kill('SIGTERM'), workerB.kill('SIGTERM')]);
      await Promise.all(devices.splice(0).map((client) => client.endAsync()));
      await observer.endAsync();
      await tb.stop();
    }
  });

  it('--lines A with a shadow set (--shadow), with authentication: the shadow set hears line A and fires its command under lw/_shadow/', { timeout: 60_000 }, async () => {
    await setup('shadow');
    mkdirSync(join(dir, 'shadow-rules'), { recursive: true });
    writeFileSync(join(dir, 'shadow-rules', 'rules.yaml'), RULES.replace('values.motorTemp > 80', 'values.motorTemp > 70'));
    await observer.subscribeAsync('lw/_shadow/#', { qos: 1 });
    const shadowCommands: string[] = [];
    observer.on('message', (topic) => {
      if (/^lw\/_shadow\/[^/]+\/[^/]+\/cmd$/.test(topic)) shadowCommands.push(topic);
    });
    const worker = await engine('--lines', 'A', '--shadow', join(dir, 'shadow-rules'));
    try {
      const conv = await device('A', 'conv-1');
      // 75 °C: only the shadow rule (> 70) fires.
      await conv.publishAsync('lw/A/conv-1/telemetry', JSON.stringify({ ts: Date.now(), seq: 1, type: 'conveyor', values: { motorTemp: 75 } }), { qos: 1 });
      await waitFor(() => shadowCommands.length > 0, 20_000, "line A's shadow stop command under lw/_shadow/");
      expect(shadowCommands).toEqual(['lw/_shadow/A/line-ctl/cmd']);
      const health = (await (await fetch(`${worker.healthUrl}/healthz`)).json()) as { status: string };
      expect(health.status).toBe('ok');
    } finally {
      await worker.kill('SIGTERM');
      await Promise.all(devices.splice(0).map((client) => client.endAsync()));
      await observer.endAsync();
      await tb.stop();
    }
  });
});
