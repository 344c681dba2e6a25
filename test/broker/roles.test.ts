// The role table of broker/acl.ts against a real broker with real MQTT.js clients: for each
// service role, every grant the service uses still works (its publishes reach a subscriber, its
// subscription is granted and receives), and every grant it did not use is refused now
// (publish: dropped and counted as publish_denied; subscribe: SUBACK 0x80).
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../broker/index.js';
import { shadowTopic, topicMatches, topics } from '../../contracts/topics.js';
import { OEE_SUBSCRIPTIONS } from '../../oee/index.js';
import { sleep, waitFor } from '../../lib/wait.js';
import { grantedQos as granted, startTestBroker, type TestBroker } from '../harness/broker.js';
import { roleGrants } from '../../config/services.js';

let tb: TestBroker;
const clients: MqttClient[] = [];

const PASSWORD = 'Role-test-secret-7';
const ACCOUNTS: [string, Role][] = [['ops', 'admin'], ['rules', 'rules'], ['historian', 'historian'], ['oee', 'oee'], ['dash', 'dashboard']];

beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null });
  for (const [username, role] of ACCOUNTS) await tb.addAccount(username, PASSWORD, role);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await tb?.stop();
});

async function connectAs(username: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(tb.url, { clientId: `${username}:${Math.random().toString(16).slice(2)}`, username, password: PASSWORD, reconnectPeriod: 0, connectTimeout: 5000 });
  clients.push(client);
  return client;
}

const now = Date.now();
const payloads = {
  cmd: { id: 'c1', action: 'stop', params: {}, origin: 'rule:test', ts: now, expiresAt: now + 60_000 },
  outcome: { id: 'c1', action: 'stop', params: {}, origin: 'rule:test', target: 'conv-1', outcome: 'done', attempts: 1, issuedAt: now, ts: now },
  alert: { id: 'a1', rule: 'overheat', severity: 'warning', state: 'acknowledged', message: 'hot', origin: 'user:dashboard', ts: now },
  summary: { ts: now, oee: 0.8, availability: 0.9 },
  oeePeriod: { ts: now, period: 'hour', scope: 'line', start: now - 60_000, end: now, complete: true, plannedMs: 60_000, runMs: 60_000, downMs: {}, microStops: 0, microStopMs: 0, plannedStopMs: 0, unknownMs: 0, goodCount: 1, scrapCount: 0 },
  downtime: { ts: now, scope: 'device', device: 'st-1', state: 'FAULT', start: now - 1000, end: now, durationMs: 1000, plannedMs: 0, micro: true, open: false },
  dead: { ts: now, clientId: 'rules', topic: 'lw/A/conv-1/telemetry', reason: 'future_ts: ts is 3600000 ms ahead', payload: '' },
  alarm: { id: 'overheat:A/conv-1', rule: 'overheat', severity: 'warning', message: 'hot', device: 'conv-1', state: 'active-unacked', transition: 'raise', raisedAt: now, rev: 1, ts: now },
  alarmSet: { action: 'acknowledge', operator: 'user:dashboard', comment: 'seen', ts: now },
};
const shadowPayloads = { shadowCmd: payloads.cmd, shadowOutcome: { ...payloads.outcome, outcome: 'shadow' }, shadowAlert: payloads.alert, shadowDead: payloads.dead, shadowAlarm: payloads.alarm, shadowAlarmSet: payloads.alarmSet };
const TOPIC = {
  cmd: 'lw/A/conv-1/cmd',
  outcome: 'lw/A/conv-1/cmd/outcome',
  alert: 'lw/A/alerts',
  summary: 'lw/A/summary',
  oeePeriod: 'lw/A/oee',
  downtime: 'lw/A/downtime',
  dead: 'lw/_dead/rules',
  alarm: 'lw/A/alarms/overheat:A.conv-1',
  alarmSet: 'lw/A/alarms/overheat:A.conv-1/set',
  // A shadow rule set's (rules.shadowDir): the same topics under lw/_shadow/.
  shadowCmd: 'lw/_shadow/A/conv-1/cmd',
  shadowOutcome: 'lw/_shadow/A/conv-1/cmd/outcome',
  shadowAlert: 'lw/_shadow/A/alerts',
  shadowDead: 'lw/_shadow/_dead/rules',
  shadowAlarm: 'lw/_shadow/A/alarms/overheat:A.conv-1',
  shadowAlarmSet: 'lw/_shadow/A/alarms/overheat:A.conv-1/set',
} as const;
type Kind = keyof typeof TOPIC;
const PAYLOAD: Record<Kind, unknown> = { ...payloads, ...shadowPayloads };

interface RoleCase {
  username: string;
  role: Role;
  /** What the service publishes (grep of its code) and subscribes to. */
  publishes: Kind[];
  subscribes: string[];
  /** Grants the table held that the service never used. */
  noLongerPublishes: Kind[];
  noLongerSubscribes: string[];
}

const CASES: RoleCase[] = [
  // rules/rule-actions.ts (alerts), rules/alarm-desk.ts (alarm states), rules/commands.ts (cmd, cmd/outcome), rules/dead-letters.ts (lw/_dead/rules), and the same under lw/_shadow/ for a shadow set (rules/shadow-bus.ts); subscribes to the device events (state, telemetry, status, acks), its alarms' states and operators' requests (the shadow set: the shadow acks, alarms and requests), nothing else.
  {
    username: 'rules',
    role: 'rules',
    publishes: ['cmd', 'outcome', 'alert', 'dead', 'alarm', 'shadowCmd', 'shadowOutcome', 'shadowAlert', 'shadowDead', 'shadowAlarm'],
    subscribes: [...topics.allDeviceEvents, topics.allAlarms, topics.allAlarmRequests, ...[topics.ack('+', '+'), topics.allAlarms, topics.allAlarmRequests].map(shadowTopic)],
    noLongerPublishes: ['summary', 'alarmSet', 'shadowAlarmSet'],
    noLongerSubscribes: ['lw/#', 'lw/+/alerts', '$SYS/#'],
  },
  // historian/index.ts: a pure sink, it publishes nothing (OEE summaries moved to the oee role); subscribes to lw/#.
  { username: 'historian', role: 'historian', publishes: [], subscribes: ['lw/#'], noLongerPublishes: ['summary'], noLongerSubscribes: ['$SYS/#'] },
  // oee/service.ts: OEE summaries on lw/{line}/summary, period figures on lw/{line}/oee, stops on lw/{line}/downtime; subscribes to state, telemetry, status and command outcomes (OEE_SUBSCRIPTIONS), nothing else.
  { username: 'oee', role: 'oee', publishes: ['summary', 'oeePeriod', 'downtime'], subscribes: OEE_SUBSCRIPTIONS, noLongerPublishes: ['cmd', 'outcome', 'alert', 'dead', 'alarm', 'shadowCmd'], noLongerSubscribes: ['lw/#', 'lw/+/alerts', 'lw/+/+/cmd', '$SYS/#'] },
  // dashboard/server/index.ts: an operator's acknowledge/shelve/clear on lw/{line}/alarms/{alarmId}/set (no longer on lw/{line}/alerts, nor the alarm state itself); subscribes to lw/#.
  { username: 'dash', role: 'dashboard', publishes: ['alarmSet'], subscribes: ['lw/#'], noLongerPublishes: ['cmd', 'outcome', 'alert', 'dead', 'alarm', 'shadowAlarmSet'], noLongerSubscribes: ['$SYS/#'] },
];

describe('the role table', () => {
  it.each(CASES)('$role: its used grants work, the unused ones are refused', async (c) => {
    const admin = await connectAs('ops');
    const seen: string[] = [];
    admin.on('message', (topic) => seen.push(topic));
    await admin.subscribeAsync('lw/#', { qos: 1 });
    const service = await connectAs(c.username);

    // Publishes: the refused ones first, then the used ones; only the used ones arrive.
    const deniedBefore = tb.broker.stats().rejects.publish_denied;
    for (const kind of c.noLongerPublishes) await service.publishAsync(TOPIC[kind], JSON.stringify(PAYLOAD[kind]), { qos: 1 });
    for (const kind of c.publishes) await service.publishAsync(TOPIC[kind], JSON.stringify(PAYLOAD[kind]), { qos: 1 });
    await waitFor(() => c.publishes.every((kind) => seen.includes(TOPIC[kind])), 5000, `the ${c.role} role's publishes at the admin subscriber`);
    await sleep(100);
    expect(seen).toEqual(c.publishes.map((kind) => TOPIC[kind]));
    expect(tb.broker.stats().rejects.publish_denied - deniedBefore).toBe(c.noLongerPublishes.length);
    expect(service.connected).toBe(true); // dropped, not disconnected

    // Subscriptions: the used ones are granted and receive, the others get SUBACK 0x80.
    for (const filter of c.noLongerSubscribes) expect(await granted(service, filter), filter).toBe(128);
    const received: string[] = [];
    service.on('message', (topic) => received.push(topic));
    for (const filter of c.subscribes) expect(await granted(service, filter), filter).toBe(1);
    const probe = 'lw/A/conv-1/state';
    await admin.publishAsync(probe, JSON.stringify({ ts: Date.now(), seq: 1, state: 'RUNNING' }), { qos: 1 });
    await waitFor(() => received.includes(probe), 5000, `the ${c.role} role's subscription receiving ${probe}`);
    expect(c.subscribes.some((filter) => topicMatches(filter, probe))).toBe(true);
  });

  it('is exactly what the service modules declare: these cases cover every declared grant of their roles', () => {
    const table = roleGrants();
    for (const c of CASES) {
      const declared = table[c.role];
      expect(declared?.subscribe, c.role).toEqual(c.subscribes);
      const live = { cmd: 'lw/+/+/cmd', outcome: 'lw/+/+/cmd/outcome', alert: 'lw/+/alerts', summary: 'lw/+/summary', oeePeriod: 'lw/+/oee', downtime: 'lw/+/downtime', dead: 'lw/_dead/rules', alarm: 'lw/+/alarms/+', alarmSet: 'lw/+/alarms/+/set' };
      const filters: Record<Kind, string> = { ...live, shadowCmd: shadowTopic(live.cmd), shadowOutcome: shadowTopic(live.outcome), shadowAlert: shadowTopic(live.alert), shadowDead: shadowTopic(live.dead), shadowAlarm: shadowTopic(live.alarm), shadowAlarmSet: shadowTopic(live.alarmSet) };
      expect(declared?.publish, c.role).toEqual(c.publishes.map((kind) => filters[kind]));
    }
  });
});
