// The OEE service against a real broker: figures from the event stream published on
// lw/{line}/summary, on the in-process bus and standalone over MQTT with an oee account; its
// health driven into each state for real (not subscribed; summaries refused by a subscriber).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MessageRefused, MqttBus, type Bus } from '../../bus/index.js';
import { InProcessBus } from '../../broker/in-process-bus.js';
import type { SummaryPayload } from '../../contracts/index.js';
import { waitFor } from '../../lib/wait.js';
import { OeeService, oeeConfigSchema } from '../../oee/index.js';
import { NO_REDELIVERY, startTestBroker, type TestBroker } from '../harness/broker.js';

const MIN = 60_000;
const T0 = 1_700_000_000_000;
const END = T0 + 30 * MIN;
const PASSWORD = 'Oee-test-secret-9';

describe('OeeService', () => {
  let broker: TestBroker;
  const running: OeeService[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    broker = await startTestBroker({ wsPort: null });
    await broker.addAccount('oee', PASSWORD, 'oee');
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((service) => service.stop()));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  function startOee(bus: Bus, overrides: Record<string, unknown> = {}): OeeService {
    const config = oeeConfigSchema.parse({ publishIntervalMs: 100, calendar: { timeZone: 'UTC' }, ...overrides });
    const service = new OeeService({ bus, config });
    running.push(service);
    return service;
  }

  /** Every summary published on lw/{line}/summary, as the broker's other subscribers see it. */
  async function collectSummaries(line: string): Promise<SummaryPayload[]> {
    const summaries: SummaryPayload[] = [];
    const unsubscribe = await broker.broker.bus.subscribe(`lw/${line}/summary`, (_topic, payload) => void summaries.push(JSON.parse(payload.toString()) as SummaryPayload));
    cleanups.push(unsubscribe);
    return summaries;
  }

  /** A 30-minute stretch of line `line`: 24 min running, 5 FAULT, 1 STARVED; 210 parts, 10 scrap. */
  async function publishShift(line: string): Promise<void> {
    const publish = (topic: string, payload: unknown): Promise<void> => broker.broker.bus.publish(topic, JSON.stringify(payload), { qos: 1 });
    await publish(`lw/${line}/line-ctl/telemetry`, { ts: T0, seq: 0, values: { goodCount: 1000, scrapCount: 40, speedSetpoint: 1.5 }, type: 'line-controller' });
    await publish(`lw/${line}/line-ctl/state`, { ts: T0, seq: 1, state: 'RUNNING' });
    await publish(`lw/${line}/st-1/state`, { ts: T0, seq: 0, state: 'RUNNING' });
    await publish(`lw/${line}/st-1/state`, { ts: T0 + 10 * MIN, seq: 1, state: 'FAULT' });
    await publish(`lw/${line}/st-2/state`, { ts: T0 + 11 * MIN, seq: 0, state: 'STARVED' });
    await publish(`lw/${line}/st-1/state`, { ts: T0 + 15 * MIN, seq: 2, state: 'RUNNING' });
    await publish(`lw/${line}/st-2/state`, { ts: T0 + 16 * MIN, seq: 1, state: 'RUNNING' });
    await publish(`lw/${line}/line-ctl/cmd/outcome`, { id: 'c1', action: 'set_strategy', params: { strategy: 'safe' }, origin: 'rule:test', target: 'line-ctl', outcome: 'done', attempts: 1, issuedAt: T0, ts: T0 + MIN });
    await publish(`lw/${line}/line-ctl/telemetry`, { ts: END, seq: 2, values: { goodCount: 1200, scrapCount: 50, speedSetpoint: 1.5 }, type: 'line-controller' });
  }

  function expectShiftFigures(summary: SummaryPayload | undefined): void {
    const availability = 24 / 30;
    const performance = 210 / 12 / 24;
    const quality = 200 / 210;
    expect(summary).toMatchObject({ ts: END, speed: 1.5, strategy: 'safe', goodCount: 200, scrapCount: 10 });
    expect(summary!.availability).toBeCloseTo(availability, 9);
    expect(summary!.performance).toBeCloseTo(performance, 9);
    expect(summary!.quality).toBeCloseTo(quality, 9);
    expect(summary!.oee).toBeCloseTo(availability * performance * quality, 9);
  }

  it('computes OEE from the event stream and publishes it on lw/{line}/summary (in-process bus)', async () => {
    const service = startOee(broker.broker.bus, { lines: { O: { idealRatePerMin: 12 } } });
    await service.start();
    const summaries = await collectSummaries('O');
    await publishShift('O');
    await waitFor(() => summaries.some((summary) => summary.goodCount === 200), 10_000, 'a summary of the whole stretch on lw/O/summary');
    expectShiftFigures(summaries.find((summary) => summary.goodCount === 200));
    expect(service.counters()).toMatchObject({ lines: 1, subscribed: 1, dropped_invalid: 0 });
    expect(service.counters().received).toBe(9);
    expect(service.counters().summaries_published).toBeGreaterThan(0);
  });

  it('runs standalone over MQTT with an account of the oee role', async () => {
    const bus = await MqttBus.connect(broker.url, { username: 'oee', password: PASSWORD, clientId: 'oee:test', reconnectPeriod: 0 });
    cleanups.push(() => bus.close());
    const service = startOee(bus);
    await service.start();
    const summaries = await collectSummaries('M');
    await publishShift('M');
    await waitFor(() => summaries.some((summary) => summary.goodCount === 200), 10_000, 'a summary of line M published over MQTT');
    expectShiftFigures(summaries.find((summary) => summary.goodCount === 200));
  });

  it('refuses to start on an account that may not read the device events, naming the role it needs', async () => {
    // A gateway account reads only commands (lw/+/+/cmd).
    await broker.addAccount('gw', PASSWORD, 'gateway');
    const bus = await MqttBus.connect(broker.url, { username: 'gw', password: PASSWORD, clientId: 'gw:oee-test', reconnectPeriod: 0 });
    cleanups.push(() => bus.close());
    const service = startOee(bus);
    await expect(service.start()).rejects.toThrow(/needs the oee role: linewatch devices add NAME --role oee/);
    expect(service.health()).toMatchObject({ status: 'down' });
  });

  it('health: down until started and after stop, ok while publishing, degraded while its summaries are refused', async () => {
    // Its own bus without in-process redelivery, so a refused summary fails at once.
    const service = startOee(new InProcessBus(broker.broker.aedes, { redelivery: NO_REDELIVERY }));
    expect(service.health()).toEqual({ status: 'down', reasons: ['not subscribed to the device events (not started, or stopped)'] });
    await service.start();
    expect(service.health().status).toBe('ok');

    // A subscriber that refuses every summary, as a historian whose spool is full refuses events.
    let refusing = true;
    const unsubscribe = await broker.broker.bus.subscribe('lw/R/summary', () => {
      if (refusing) throw new MessageRefused('spool full (a refusing test subscriber)');
    });
    cleanups.push(unsubscribe);
    await publishShift('R');
    const degraded = await waitFor(() => (service.health().status === 'degraded' ? service.health() : undefined), 10_000, 'the OEE service degraded by refused summaries');
    expect(degraded.reasons).toEqual([expect.stringMatching(/^summaries are not being published: line R: .*refus/)]);
    expect(service.counters()).toMatchObject({ publish_failing: 1 });
    expect(service.counters().summary_failures).toBeGreaterThan(0);

    refusing = false;
    await waitFor(() => service.health().status === 'ok', 10_000, 'the OEE service ok again once its summaries are taken');
    expect(service.counters().publish_failing).toBe(0);

    await service.stop();
    expect(service.health().status).toBe('down');
    expect(service.counters().subscribed).toBe(0);
  });

  it('names its gauges among its counters', () => {
    const service = startOee(broker.broker.bus);
    const keys = Object.keys(service.counters());
    for (const gauge of service.gauges) expect(keys).toContain(gauge);
    expect([...service.gauges].sort()).toEqual(['lines', 'publish_failing', 'state_failing', 'subscribed']);
  });
});
