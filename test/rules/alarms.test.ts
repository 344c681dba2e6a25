// Alarms with one source of truth: the rules engine owns each alarm's state and publishes it
// retained on lw/{line}/alarms/{alarmId}; the dashboard (a real DashboardServer on the same real
// broker) shows those states and sends operators' actions to the engine over MQTT. A real MQTT.js
// client reads the retained topics as any new subscriber would.
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { AlarmPayload } from '../../contracts/schemas.js';
import type { Bus } from '../../bus/bus.js';
import { MqttBus } from '../../bus/mqtt.js';
import { DashboardServer } from '../../dashboard/server/index.js';
import { ManualClock } from '../../rules/clock.js';
import { RulesEngine } from '../../rules/engine.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { startFixture, type Fixture } from './fixture.js';
import { REPUBLISH_AFTER_RESTORE_MS } from '../../rules/alarm-desk.js';

const RULES = `rules:
  - id: overheat
    match: { device: conv-2 }
    when: values.temp > 80
    clear: values.temp < 70
    actions:
      - alert: { severity: warning, message: "conv-2 at {values.temp} °C" }
`;
const ALARM_ID = 'overheat:A/conv-2';
const JSON_HEADERS = { 'content-type': 'application/json' };

let f: Fixture | undefined;
const dashboards: DashboardServer[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(dashboards.splice(0).map((d) => d.stop()));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await f?.stop();
  f = undefined;
});

/** A bus to the fixture's broker over MQTT (as a standalone service has): it gets retained messages on subscribing, the in-process bus does not. */
async function mqttBus(fixture: Fixture): Promise<MqttBus> {
  const bus = await MqttBus.connect(fixture.broker.url, { clientId: `alarms-test-${Math.random().toString(36).slice(2, 8)}`, reconnectPeriod: 0 });
  cleanups.push(() => bus.close());
  return bus;
}

async function startDashboard(fixture: Fixture, bus: Bus = fixture.broker.broker.bus): Promise<DashboardServer> {
  const dashboard = new DashboardServer({ bus, config: { host: '127.0.0.1', port: 0, token: null } });
  await dashboard.start();
  dashboards.push(dashboard);
  return dashboard;
}

async function getJson<T>(dashboard: DashboardServer, path: string): Promise<T> {
  return (await (await fetch(`${dashboard.url}${path}`)).json()) as T;
}

const activeIds = async (dashboard: DashboardServer): Promise<string[]> => (await getJson<{ alerts: AlarmPayload[] }>(dashboard, '/api/alerts')).alerts.map((a) => a.id);

/** The retained state of the alarm, as a new MQTT subscriber gets it (undefined: nothing retained). */
async function retainedAlarm(fixture: Fixture, topic: string): Promise<AlarmPayload | undefined> {
  const client = await mqtt.connectAsync(fixture.broker.url, { clientId: `alarm-reader-${Math.random().toString(36).slice(2, 8)}`, reconnectPeriod: 0 });
  const probe = `lw/A/probe-${Math.random().toString(36).slice(2, 8)}/status`;
  try {
    let retained: AlarmPayload | undefined;
    const probed = new Promise<void>((resolve) =>
      client.on('message', (t, payload, packet) => {
        if (t === topic && packet.retain && payload.length > 0) retained = JSON.parse(payload.toString()) as AlarmPayload;
        if (t === probe) resolve();
      }),
    );
    await client.subscribeAsync([topic, probe], { qos: 1 });
    // The broker sends a retained message on subscribing, so once the probe published after the SUBACK is back, it came.
    await client.publishAsync(probe, JSON.stringify({ ts: Date.now(), status: 'online' }), { qos: 1 });
    await withTimeout(probed, 5000, `the probe after subscribing to ${topic}`);
    return retained;
  } finally {
    await client.endAsync(true);
  }
}

async function raiseOverheat(fixture: Fixture, dashboard: DashboardServer): Promise<void> {
  await fixture.telemetry('conv-2', { temp: 92 });
  await waitFor(async () => (await activeIds(dashboard)).includes(ALARM_ID), 5000, 'the overheat alarm in /api/alerts');
}

describe('alarms owned by the engine', () => {
  it("an operator's ack from the dashboard (POST /api/alerts/acknowledge) changes the engine's alarm state and its retained topic", async () => {
    f = await startFixture(RULES);
    const dashboard = await startDashboard(f);
    await raiseOverheat(f, dashboard);
    expect(f.engine.alarms().map((entry) => [entry.line, entry.alarm.id, entry.alarm.state])).toEqual([['A', ALARM_ID, 'active-unacked']]);

    const res = await fetch(`${dashboard.url}/api/alerts/acknowledge`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ id: ALARM_ID, line: 'A', operator: 'ana', comment: 'cooling it down' }) });
    expect(res.status).toBe(202);
    await waitFor(() => f!.engine.alarms()[0]?.alarm.state === 'active-acked', 5000, "the engine's alarm acknowledged");
    expect(f.engine.alarms()[0]?.alarm).toMatchObject({ transition: 'ack', operator: 'user:ana', comment: 'cooling it down', rev: 2 });
    expect(await retainedAlarm(f, 'lw/A/alarms/overheat:A.conv-2')).toMatchObject({ id: ALARM_ID, state: 'active-acked', operator: 'user:ana', comment: 'cooling it down' });
    await waitFor(async () => (await getJson<{ alerts: AlarmPayload[] }>(dashboard, '/api/alerts')).alerts[0]?.state === 'active-acked', 5000, 'the acknowledged state in /api/alerts');

    // The condition clears: acknowledged and returned, the alarm is normal and its retained topic emptied.
    await f.telemetry('conv-2', { temp: 60 });
    await waitFor(() => f!.engine.alarms().length === 0, 5000, 'the alarm normal in the engine');
    await waitFor(async () => (await activeIds(dashboard)).length === 0, 5000, 'the alarm gone from /api/alerts');
    expect(await retainedAlarm(f, 'lw/A/alarms/overheat:A.conv-2')).toBeUndefined();
    expect(f.alarms.map((a) => [a.state, a.transition])).toEqual([
      ['active-unacked', 'raise'],
      ['active-acked', 'ack'],
      ['normal', 'return'],
    ]);
    const { transitions } = await getJson<{ transitions: AlarmPayload[] }>(dashboard, '/api/alarms');
    expect(transitions.map((t) => t.transition)).toEqual(['return', 'ack', 'raise']);
  });

  it('a shelved alarm does not show as active until it unshelves, by itself when its time is up', async () => {
    f = await startFixture(RULES);
    const dashboard = await startDashboard(f);
    await raiseOverheat(f, dashboard);
    const res = await fetch(`${dashboard.url}/api/alerts/shelve`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ id: ALARM_ID, minutes: 1, comment: 'sensor being replaced' }) });
    expect(res.status).toBe(202);
    await waitFor(async () => !(await activeIds(dashboard)).includes(ALARM_ID), 5000, 'the shelved alarm off the active list');
    const { alarms } = await getJson<{ alarms: AlarmPayload[] }>(dashboard, '/api/alarms');
    expect(alarms).toEqual([expect.objectContaining({ id: ALARM_ID, state: 'active-unacked', transition: 'shelve', operator: 'user:dashboard', comment: 'sensor being replaced', shelvedUntil: f.clock.now() + 60_000 })]);

    await f.advance(59_000);
    expect(await activeIds(dashboard)).not.toContain(ALARM_ID);
    await f.advance(1_100);
    await waitFor(async () => (await activeIds(dashboard)).includes(ALARM_ID), 5000, 'the alarm back on the active list after its shelving time');
    expect(f.engine.alarms()[0]?.alarm).toMatchObject({ state: 'active-unacked', transition: 'unshelve' });
    expect(f.engine.alarms()[0]?.alarm).not.toHaveProperty('shelvedUntil');
  });

  it('an active alarm survives an engine restart, is not raised twice, and a dashboard started after shows it at once', async () => {
    f = await startFixture(RULES);
    const before = await startDashboard(f);
    await raiseOverheat(f, before);
    await f.restart();
    expect(f.engine.counters().restored_alarms).toBe(1);
    expect(f.engine.alarms().map((entry) => entry.alarm.state)).toEqual(['active-unacked']);
    await f.telemetry('conv-2', { temp: 95 }); // still hot: no second raise
    const after = await startDashboard(f, await mqttBus(f));
    // From the retained topic: nothing about the alarm is published after this dashboard started.
    const published = f.alarms.length;
    await waitFor(async () => (await activeIds(after)).includes(ALARM_ID), 5000, 'the alarm in the new dashboard, from the retained topic');
    expect(f.alarms.length).toBe(published);
    // The restarted engine first waits for the broker's retained states (newer ones win), then
    // publishes the restored state again for a broker that lost it: the same rev, not a second raise.
    expect(f.alarms.map((a) => [a.transition, a.rev])).toEqual([['raise', 1]]);
    await f.advance(REPUBLISH_AFTER_RESTORE_MS + 500);
    await waitFor(() => f!.alarms.length === 2, 5000, 'the restored state published again');
    expect(f.alarms.map((a) => [a.transition, a.rev])).toEqual([
      ['raise', 1],
      ['raise', 1],
    ]);
  });

  it('a restarted engine without its state file reads the retained state back: an ack made since is kept and the alarm is not raised twice', async () => {
    f = await startFixture(RULES);
    const dashboard = await startDashboard(f);
    await raiseOverheat(f, dashboard);
    await fetch(`${dashboard.url}/api/alerts/acknowledge`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ id: ALARM_ID, operator: 'ana' }) });
    await waitFor(() => f!.engine.alarms()[0]?.alarm.state === 'active-acked', 5000, "the engine's alarm acknowledged");
    await f.engine.stop();

    // Another engine on the same rules, over MQTT, with no rules-state.json.
    const engine = new RulesEngine({ bus: await mqttBus(f), dir: f.dir, clock: new ManualClock(f.clock.now()), watch: false, settings: { tickMs: 100 } });
    await engine.start();
    cleanups.push(() => engine.stop());
    await waitFor(() => engine.alarms()[0]?.alarm.state === 'active-acked', 5000, 'the retained alarm state read back');
    expect(engine.alarms()[0]?.alarm).toMatchObject({ operator: 'user:ana', rev: 2 });
    await f.telemetry('conv-2', { temp: 93 }); // the rule's instance becomes active again: its alarm is active already
    await waitFor(() => engine.counters().activations === 1, 5000, 'the rule active in the new engine');
    expect(engine.alarms()[0]?.alarm).toMatchObject({ state: 'active-acked', rev: 2 });
    expect(f.alarms.filter((a) => a.transition === 'raise')).toHaveLength(1);
  });

  it('refuses, counts and logs a request for an alarm that is not there; the dashboard answers 404 for it', async () => {
    f = await startFixture(RULES);
    const dashboard = await startDashboard(f);
    await f.broker.broker.bus.publish('lw/A/alarms/overheat:A.conv-9/set', JSON.stringify({ action: 'acknowledge', operator: 'user:ana', ts: Date.now() }), { qos: 1 });
    await waitFor(() => f!.engine.counters().alarm_requests_refused === 1, 5000, 'the refused request counted');
    expect(f.alarms).toEqual([]);
    const res = await fetch(`${dashboard.url}/api/alerts/acknowledge`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ id: 'overheat:A/conv-9' }) });
    expect(res.status).toBe(404);
    const shelveWithout = await fetch(`${dashboard.url}/api/alerts/shelve`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ id: ALARM_ID }) });
    expect(shelveWithout.status).toBe(400);
    expect(((await shelveWithout.json()) as { error: string }).error).toMatch(/shelve needs minutes/);
  });
});
