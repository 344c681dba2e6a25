// A shadow rule set (rules.shadowDir) beside the live one on a real broker with authentication:
// the same events, its commands and alarms only under lw/_shadow/. The device is a real MQTT
// connection with its device account: it receives the live command and never a shadow one, and
// the broker refuses it any subscription under lw/_shadow/.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AlarmPayload, CommandOutcomePayload, CommandPayload } from '../../contracts/schemas.js';
import { ManualClock, settle } from '../../rules/clock.js';
import { RulesEngine } from '../../rules/engine.js';
import { sleep, waitFor } from '../../lib/wait.js';
import { grantedQos, startTestBroker, type TestBroker } from '../harness/broker.js';
import { T0 } from './fixture.js';

/** The same rule in both sets; the shadow's threshold is 70 °C where the live one's is 80. */
const rule = (threshold: number): string => `rules:
  - id: hot-slowdown
    match: { line: A, device: conv-1, kind: telemetry }
    when: values.motorTemp > ${threshold}
    clear: values.motorTemp < 50
    actions:
      - command: { target: line-ctl, action: set_speed, params: { speed: 20 } }
      - alert: { severity: warning, message: "{device} hot" }
`;

const PASSWORD = 'Shadow-test-secret-3';
let tb: TestBroker;
let dir: string;
let engine: RulesEngine;
let clock: ManualClock;
const clients: mqtt.MqttClient[] = [];

async function connect(username: string): Promise<mqtt.MqttClient> {
  const client = await mqtt.connectAsync(tb.url, { username, password: PASSWORD, clientId: `${username}:${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
  clients.push(client);
  return client;
}

beforeEach(async () => {
  tb = await startTestBroker({ wsPort: null });
  for (const device of ['line-ctl', 'conv-1']) await tb.addAccount(`A/${device}`, PASSWORD, 'device');
  await tb.addAccount('ops', PASSWORD, 'admin');
  dir = mkdtempSync(join(tmpdir(), 'linewatch-shadow-'));
  for (const [name, threshold] of [['live', 80], ['shadow', 70]] as const) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'rules.yaml'), rule(threshold));
  }
  clock = new ManualClock(T0);
  engine = new RulesEngine({ bus: tb.broker.bus, dir: join(dir, 'live'), shadowDir: join(dir, 'shadow'), stateFile: join(dir, 'state', 'rules-state.json'), clock, watch: false, settings: { tickMs: 100 } });
  await engine.start();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.endAsync(true)));
  await engine.stop();
  await tb.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a shadow rule set', () => {
  it('runs on the same events; its command reaches no device connection while the live one does', async () => {
    // The line controller, as a device: its command topic, and what it may not subscribe to.
    const device = await connect('A/line-ctl');
    const atDevice: CommandPayload[] = [];
    device.on('message', (_topic, payload) => {
      const command = JSON.parse(payload.toString()) as CommandPayload;
      atDevice.push(command);
      void device.publishAsync('lw/A/line-ctl/cmd/ack', JSON.stringify({ id: command.id, result: 'done', ts: clock.now(), seq: atDevice.length }), { qos: 1 });
    });
    expect(await grantedQos(device, 'lw/A/line-ctl/cmd')).toBe(1);
    expect(await grantedQos(device, 'lw/_shadow/#')).toBe(128);
    expect(await grantedQos(device, 'lw/_shadow/A/line-ctl/cmd')).toBe(128);
    // Everything on the broker, as an operator sees it.
    const ops = await connect('ops');
    const seen: { topic: string; body: unknown }[] = [];
    ops.on('message', (topic, payload) => seen.push({ topic, body: payload.length === 0 ? null : (JSON.parse(payload.toString()) as unknown) }));
    await ops.subscribeAsync('lw/#', { qos: 1 });
    const conveyor = await connect('A/conv-1');
    let seq = 0;
    const telemetry = async (motorTemp: number): Promise<void> => {
      await conveyor.publishAsync('lw/A/conv-1/telemetry', JSON.stringify({ ts: clock.now(), seq: seq++, values: { motorTemp } }), { qos: 1 });
    };

    // 75 °C: only the shadow rule (> 70) fires.
    await telemetry(75);
    await waitFor(() => seen.find((m) => m.topic === 'lw/_shadow/A/line-ctl/cmd/outcome'), 5000, 'the shadow command’s outcome under lw/_shadow/');
    const shadowCommand = seen.find((m) => m.topic === 'lw/_shadow/A/line-ctl/cmd')?.body as CommandPayload;
    expect(shadowCommand).toMatchObject({ action: 'set_speed', params: { speed: 20 }, origin: 'rule:hot-slowdown' });
    expect((seen.find((m) => m.topic === 'lw/_shadow/A/line-ctl/cmd/outcome')?.body as CommandOutcomePayload)).toMatchObject({ id: shadowCommand.id, outcome: 'shadow', attempts: 1 });
    // Its alarm is its own, retained under the shadow root; the live alarm topics have none.
    await waitFor(() => seen.find((m) => m.topic === 'lw/_shadow/A/alarms/hot-slowdown:A.conv-1'), 5000, 'the shadow alarm under lw/_shadow/');
    expect((seen.find((m) => m.topic === 'lw/_shadow/A/alarms/hot-slowdown:A.conv-1')?.body as AlarmPayload).state).toBe('active-unacked');
    expect(seen.filter((m) => /^lw\/A\/(alarms|alerts|line-ctl\/cmd)/.test(m.topic))).toEqual([]);
    expect(engine.alarms()).toEqual([]);
    expect(engine.shadowAlarms().map((a) => a.alarm.id)).toEqual(['hot-slowdown:A/conv-1']);

    // 85 °C: the live rule fires too; its command reaches the device.
    await telemetry(85);
    await waitFor(() => atDevice.length > 0, 5000, 'the live command at the line controller’s connection');
    await waitFor(() => engine.counters().outcome_done, 5000, 'the live command done (acked by the device)');
    await clock.advance(3000); // ticks: a shadow command would be retried or expire now if it waited for an ack
    await settle();
    await sleep(200); // bounded: anything more on its way to the device arrives
    expect(atDevice.map((c) => [c.action, c.params, c.id.startsWith('c')])).toEqual([['set_speed', { speed: 20 }, true]]);
    expect(atDevice.some((c) => c.id === shadowCommand.id)).toBe(false);
    // The shadow command was sent once, with no retry, expiry or outcome but `shadow`.
    expect(seen.filter((m) => m.topic === 'lw/_shadow/A/line-ctl/cmd')).toHaveLength(1);
    expect(seen.filter((m) => m.topic === 'lw/_shadow/A/line-ctl/cmd/outcome').map((m) => (m.body as CommandOutcomePayload).outcome)).toEqual(['shadow']);
    const counters = engine.counters();
    expect(counters).toMatchObject({ commands_sent: 1, shadow_commands_sent: 1, shadow_outcome_shadow: 1, shadow_rules: 1, shadow_load_errors: 0, alarms: 1, shadow_alarms: 1 });
    expect(counters.shadow_commands_retried ?? 0).toBe(0);
    expect(counters.shadow_outcome_expired ?? 0).toBe(0);
    expect(engine.gauges.has('shadow_load_errors')).toBe(true);
  });

  it('a shadow rule file broken at a reload: degraded, the reason and shadow_load_errors name the shadow set; the live set is untouched', async () => {
    expect(engine.health().status).toBe('ok');
    writeFileSync(join(dir, 'shadow', 'rules.yaml'), rule(70).replace('values.motorTemp > 70', 'values.motorTemp >'));
    expect(engine.reload()).toEqual([expect.stringMatching(/^shadow: .*rules\.yaml:\d+ \[hot-slowdown\]: when:/) as string]);
    const health = engine.health();
    expect(health.status).toBe('degraded');
    expect(health.reasons).toEqual([expect.stringMatching(new RegExp(`^shadow rule set ${join(dir, 'shadow')} \\(its commands go to no device\\): 1 error\\(s\\) in the rule files`)) as string]);
    expect(engine.counters()).toMatchObject({ load_errors: 0, shadow_load_errors: 1, shadow_rules: 1, rules: 1 });
  });

  it('in a --lines worker, hears the device events of its lines and fires its shadow command', async () => {
    await engine.stop();
    const worker = new RulesEngine({ bus: tb.broker.bus, dir: join(dir, 'live'), shadowDir: join(dir, 'shadow'), stateFile: join(dir, 'state-A', 'rules-state.json'), clock, watch: false, settings: { tickMs: 100 }, lines: { kind: 'lines', lines: ['A'] } });
    await worker.start();
    try {
      const ops = await connect('ops');
      const seen: string[] = [];
      ops.on('message', (topic) => seen.push(topic));
      await ops.subscribeAsync('lw/_shadow/#', { qos: 1 });
      const conveyor = await connect('A/conv-1');
      // 75 °C: only the shadow rule (> 70) fires.
      await conveyor.publishAsync('lw/A/conv-1/telemetry', JSON.stringify({ ts: clock.now(), seq: 1, values: { motorTemp: 75 } }), { qos: 1 });
      await waitFor(() => seen.includes('lw/_shadow/A/line-ctl/cmd'), 5000, "the line-A worker's shadow command under lw/_shadow/");
      expect(worker.counters()).toMatchObject({ shadow_commands_sent: 1 });
      expect(worker.counters().commands_sent ?? 0).toBe(0);
    } finally {
      await worker.stop();
    }
  });

  it('a shadow set with errors at start stops the engine with a reason naming the shadow set, as a broken live set does', async () => {
    expect(engine.health().status).toBe('ok');
    writeFileSync(join(dir, 'shadow', 'rules.yaml'), rule(70).replace('values.motorTemp > 70', 'values.motorTemp >'));
    await engine.stop();
    const broken = new RulesEngine({ bus: tb.broker.bus, dir: join(dir, 'live'), shadowDir: join(dir, 'shadow'), clock, watch: false });
    await expect(broken.start()).rejects.toThrow(/^shadow rules: 1 error\(s\) in .*shadow/);
    expect(broken.health()).toMatchObject({ status: 'down' });
    expect(broken.health().reasons[0]).toMatch(/could not start: shadow rules: 1 error/);
  });
});
