// An operator's action made after the engine's last snapshot survives a crash: the restarted
// engine takes the broker's retained alarm state (newer than its file) and does not overwrite it
// with the file's older one. (Found in review: the restore used to publish the file's states
// before reading the broker's back.)
import { copyFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { afterEach, expect, it } from 'vitest';
import { MqttBus } from '../../bus/index.js';
import { waitFor, withTimeout } from '../../lib/wait.js';
import { REPUBLISH_AFTER_RESTORE_MS } from '../../rules/alarm-desk.js';
import { ManualClock } from '../../rules/clock.js';
import { RulesEngine } from '../../rules/engine.js';
import { startFixture, type Fixture } from './fixture.js';

let fixture: Fixture | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await fixture?.stop();
  fixture = undefined;
});

const RULES = `rules:
  - id: overheat
    match: { device: conv-2 }
    when: values.temp > 80
    clear: values.temp < 70
    actions:
      - alert: { severity: warning, message: "conv-2 at {values.temp} °C" }
`;

/** The retained state on the broker now, as a fresh subscriber sees it. */
async function retainedState(url: string, topic: string): Promise<{ state: string; rev: number }> {
  const client = await mqtt.connectAsync(url, { clientId: `alarm-crash-probe-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, reconnectPeriod: 0 });
  try {
    const got = withTimeout(new Promise<{ state: string; rev: number }>((resolve) => client.on('message', (_topic, payload) => resolve(JSON.parse(payload.toString()) as { state: string; rev: number }))), 5000, `the retained ${topic}`);
    await client.subscribeAsync(topic, { qos: 1 });
    return await got;
  } finally {
    await client.endAsync();
  }
}

it('an ack made after the last snapshot survives a crash: the broker’s newer retained state wins over the file', async () => {
  const f = (fixture = await startFixture(RULES));
  await f.telemetry('conv-2', { temp: 95 });
  await waitFor(() => f.engine.alarms()[0]?.alarm.state === 'active-unacked', 5000, 'the alarm raised');
  await f.engine.stop(); // its snapshot: active-unacked, rev 1
  copyFileSync(f.stateFile, `${f.stateFile}.old`);
  await f.engine.start();
  await f.broker.broker.bus.publish('lw/A/alarms/overheat:A.conv-2/set', JSON.stringify({ action: 'acknowledge', operator: 'ana', comment: 'seen', ts: f.clock.now() }), { qos: 1 });
  await waitFor(() => f.engine.alarms()[0]?.alarm.state === 'active-acked', 5000, 'the ack applied');
  await f.engine.stop();
  copyFileSync(`${f.stateFile}.old`, f.stateFile); // as if it had crashed before its next snapshot

  const bus = await MqttBus.connect(f.broker.url, { clientId: `alarm-crash-${process.pid}`, reconnectPeriod: 0 });
  cleanups.push(() => bus.close());
  const clock = new ManualClock(f.clock.now());
  const engine = new RulesEngine({ bus, dir: f.dir, stateFile: f.stateFile, clock, watch: false, settings: { tickMs: 100 } });
  cleanups.push(() => engine.stop());
  await engine.start();
  await waitFor(() => engine.alarms()[0]?.alarm.state === 'active-acked', 5000, 'the retained, newer state read back');
  await clock.advance(REPUBLISH_AFTER_RESTORE_MS + 500); // past the republish of what the broker lacked
  expect(engine.alarms().map((entry) => [entry.alarm.state, entry.alarm.rev, entry.alarm.operator])).toEqual([['active-acked', 2, 'ana']]);
  expect(await retainedState(f.broker.url, 'lw/A/alarms/overheat:A.conv-2')).toMatchObject({ state: 'active-acked', rev: 2 });
});
