// The OEE service: each line's and station's OEE per hour, shift and day, and every stop interval.
//
//   bus: lw/+/+/state | telemetry | status | cmd/outcome ──► LineFigures per line (oee/line-figures.ts)
//   every oee.publishIntervalMs, per line:
//     the current shift's figures so far      ──► lw/{line}/summary  (historian: measurement `line`)
//     each period that changed or is current  ──► lw/{line}/oee      (historian: measurement `oee`)
//     each stop that ended or is still open   ──► lw/{line}/downtime (historian: measurement `downtime`)
//   then the figures are written to oee.stateFile, so a restart goes on from them (docs/oee.md#restarts).
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Bus, DecodeOnce, Unsubscribe } from '../bus/bus.js';
import { DELIVERY, STRATEGIES, topics, type DowntimePayload, type Message, type OeePeriodPayload, type Strategy, type SummaryPayload } from '../contracts/index.js';
import { lockDir, unlockDir } from '../lib/dir-lock.js';
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { healthFrom, type Health, type Service } from '../lib/service.js';
import { ShiftCalendar } from './calendar.js';
import type { OeeConfig } from './config.js';
import { LineFigures, type LineFiguresSnapshot } from './line-figures.js';

const log = logger('oee');

/** What the service reads: the device events that make a line's condition and output, and command outcomes (speed, strategy). */
export const OEE_SUBSCRIPTIONS = ['lw/+/+/state', 'lw/+/+/telemetry', 'lw/+/+/status', topics.allOutcomes];

export interface OeeServiceOptions {
  bus: Bus;
  config: OeeConfig;
  /**
   * Where the figures are kept across restarts (config.stateFile resolved by the caller, e.g.
   * under the data dir); absent or null: in memory only. Locked (`<stateFile>.lock`) while running.
   */
  stateFile?: string | null;
}

interface StateFile {
  version: 1;
  lines: Array<[string, { figures: LineFiguresSnapshot; speed?: number; strategy?: Strategy }]>;
}

/** Counters and gauges of the OEE service. */
export type OeeCounters = ReturnType<OeeService['counters']>;

interface LineEntry {
  oee: LineFigures;
  speed?: number;
  strategy?: Strategy;
}

export class OeeService implements Service {
  readonly name = 'oee';
  readonly gauges: ReadonlySet<string> = new Set(['lines', 'subscribed', 'publish_failing', 'state_failing']);
  private readonly lines = new Map<string, LineEntry>();
  private readonly limitedLog = new LogLimiter(log);
  private readonly calendar: ShiftCalendar;
  private readonly stateFile: string | undefined;
  private locked = false;
  /** Why the state file could not be written last time; cleared by the next write that succeeds. */
  private stateFailure: string | undefined;
  /** One publish round at a time (the timer, and stop()'s last round). */
  private round: Promise<void> = Promise.resolve();
  private unsubscribe: Unsubscribe | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Why the last summary could not be published; cleared by the next one that is. */
  private publishFailure: string | undefined;
  private readonly tally = {
    received: 0,
    dropped_invalid: 0,
    summaries_published: 0,
    summary_failures: 0,
    periods_published: 0,
    downtime_published: 0,
    state_writes: 0,
    state_write_failures: 0,
  };

  constructor(private readonly options: OeeServiceOptions) {
    this.calendar = new ShiftCalendar(options.config.calendar);
    this.stateFile = options.stateFile ?? undefined;
  }

  async start(): Promise<void> {
    if (this.unsubscribe) return;
    if (this.stateFile && !this.locked) {
      mkdirSync(dirname(this.stateFile), { recursive: true });
      lockDir(dirname(this.stateFile), `the OEE state file ${basename(this.stateFile)} in`, `give each OEE service its own state file (oee.stateFile); ${this.stateFile} is the other one's`, { name: `${basename(this.stateFile)}.lock` });
      this.locked = true;
      this.readState();
    }
    this.unsubscribe = await this.options.bus.subscribe(OEE_SUBSCRIPTIONS, this.onMessage, { qos: 1 }).catch((err: unknown) => {
      throw new Error(`the OEE service could not subscribe to ${OEE_SUBSCRIPTIONS.join(', ')} (${(err as Error).message}); its MQTT account needs the oee role: linewatch devices add NAME --role oee`, { cause: err });
    });
    this.timer = setInterval(() => void this.publishRound(), this.options.config.publishIntervalMs);
    this.timer.unref();
    log.info({ publishIntervalMs: this.options.config.publishIntervalMs, timeZone: this.calendar.timeZone, stateFile: this.stateFile ?? null }, 'OEE service started');
  }

  /** Stops listening, publishes one last round (stops that ended, the periods' latest figures) and writes the state file. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = undefined;
    await unsubscribe?.().catch((err: unknown) => log.warn({ err }, 'unsubscribe failed'));
    if (unsubscribe) await this.publishRound();
    await this.round;
    if (this.locked && this.stateFile) {
      unlockDir(dirname(this.stateFile), `${basename(this.stateFile)}.lock`);
      this.locked = false;
    }
    this.limitedLog.flush();
  }

  counters() {
    return {
      ...this.tally,
      lines: this.lines.size,
      subscribed: this.unsubscribe ? 1 : 0,
      publish_failing: this.publishFailure ? 1 : 0,
      state_failing: this.stateFailure ? 1 : 0,
    };
  }

  /** down: not subscribed, so no figures; degraded: the last summary could not be published. */
  health(): Health {
    return healthFrom([
      { failed: !this.unsubscribe, status: 'down', reason: 'not subscribed to the device events (not started, or stopped)' },
      { failed: this.unsubscribe !== undefined && !this.options.bus.connected(), status: 'down', reason: 'not connected to the broker: no events in, no summaries out (it reconnects by itself)' },
      { failed: this.publishFailure !== undefined, status: 'degraded', reason: `summaries are not being published: ${this.publishFailure}` },
      { failed: this.stateFailure !== undefined, status: 'degraded', reason: `the figures will not survive a restart: ${this.stateFailure}` },
    ]);
  }

  /** Each line's summary now (its current shift so far, at device time), as it would be published. */
  summaries(): Map<string, SummaryPayload> {
    const out = new Map<string, SummaryPayload>();
    for (const [lineId, entry] of this.lines) out.set(lineId, summaryOf(entry));
    return out;
  }

  /** A line's figures engine, for tests and the curious. */
  figuresOf(lineId: string): LineFigures | undefined {
    return this.lines.get(lineId)?.oee;
  }

  private readonly onMessage = (topic: string, _payload: Buffer, decoded: DecodeOnce): void => {
    this.tally.received++;
    const result = decoded();
    if (!result.ok) {
      this.tally.dropped_invalid++;
      this.limitedLog.write('warn', 'invalid', { topic }, `ignored an invalid message: ${topic}: ${result.error}`);
      return;
    }
    this.observe(result.message);
  };

  private entryOf(lineId: string): LineEntry {
    let entry = this.lines.get(lineId);
    if (!entry) {
      const config = this.options.config;
      const lineOptions = config.lines[lineId];
      entry = {
        oee: new LineFigures({
          calendar: this.calendar,
          idealRatePerMin: lineOptions?.idealRatePerMin ?? config.idealRatePerMin,
          microStopMs: config.microStopMs,
          countDevice: lineOptions?.countDevice,
          goodField: config.goodField,
          scrapField: config.scrapField,
        }),
      };
      this.lines.set(lineId, entry);
    }
    return entry;
  }

  private observe(message: Message): void {
    switch (message.kind) {
      case 'state': {
        const entry = this.entryOf(message.line);
        const v = message.payload;
        entry.oee.observeState(message.device, v.state, v.ts, { reason: v.reason, type: v.type, station: v.station });
        if (v.strategy) entry.strategy = v.strategy;
        break;
      }
      case 'telemetry': {
        const entry = this.entryOf(message.line);
        const v = message.payload;
        entry.oee.observeTelemetry(message.device, v.values, v.ts, v.type, v.station);
        const speed = v.values.speed ?? v.values.speedSetpoint;
        if (v.type === 'line-controller' && speed !== undefined) entry.speed = speed;
        break;
      }
      case 'status': {
        const entry = this.entryOf(message.line);
        const v = message.payload;
        if (v.status === 'offline') entry.oee.forget(message.device, v.ts);
        break;
      }
      case 'outcome': {
        const entry = this.entryOf(message.line);
        const v = message.payload;
        if (v.outcome !== 'done') break;
        const strategy = v.params.strategy;
        if (v.action === 'set_strategy' && STRATEGIES.includes(strategy as Strategy)) entry.strategy = strategy as Strategy;
        if (v.action === 'set_speed' && typeof v.params.speed === 'number' && entry.speed === undefined) entry.speed = v.params.speed;
        break;
      }
      default:
        break; // ack, cmd, alert, summary: nothing for OEE (not subscribed; a foreign bus may still hand them on)
    }
  }

  /** One round: every line's summary, periods and stops, then the state file; rounds never overlap. */
  private publishRound(): Promise<void> {
    this.round = this.round.then(async () => {
      for (const [lineId, entry] of this.lines) await this.publishLine(lineId, entry);
      this.writeState();
    });
    return this.round;
  }

  private async publishLine(lineId: string, entry: LineEntry): Promise<void> {
    if (entry.oee.now() === 0) return; // no device event yet (only command outcomes): no device time, no figures
    const summary = summaryOf(entry);
    const ts = entry.oee.now();
    const periods: OeePeriodPayload[] = entry.oee.periodsToPublish().map(({ scope, device, figures }) => ({ ts, scope, ...(device !== undefined ? { device } : {}), ...figures }));
    const stops: DowntimePayload[] = entry.oee.stopsToPublish();
    const sends: Array<{ topic: string; payload: unknown; delivery: (typeof DELIVERY)[keyof typeof DELIVERY]; counter: 'summaries_published' | 'periods_published' | 'downtime_published' }> = [
      { topic: topics.summary(lineId), payload: summary, delivery: DELIVERY.summary, counter: 'summaries_published' },
      ...periods.map((payload) => ({ topic: topics.oeePeriod(lineId), payload, delivery: DELIVERY.oeePeriod, counter: 'periods_published' as const })),
      ...stops.map((payload) => ({ topic: topics.downtime(lineId), payload, delivery: DELIVERY.downtime, counter: 'downtime_published' as const })),
    ];
    let failed = false;
    for (const send of sends) {
      try {
        await this.options.bus.publish(send.topic, JSON.stringify(send.payload), send.delivery);
        this.tally[send.counter]++;
      } catch (err) {
        failed = true;
        this.tally.summary_failures++;
        this.publishFailure = `line ${lineId}: ${(err as Error).message}`;
        this.limitedLog.write('warn', 'summary', { line: lineId, topic: send.topic }, `could not publish ${send.topic}: ${(err as Error).message}`);
        // An ended stop not published is published with the next round: it stays in the figures' queue.
        if (send.counter === 'downtime_published') entry.oee.requeueStop(send.payload as DowntimePayload);
      }
    }
    if (!failed) this.publishFailure = undefined;
  }

  private writeState(): void {
    if (!this.stateFile || !this.locked) return;
    const state: StateFile = { version: 1, lines: [...this.lines].map(([lineId, entry]) => [lineId, { figures: entry.oee.snapshot(), ...(entry.speed !== undefined ? { speed: entry.speed } : {}), ...(entry.strategy !== undefined ? { strategy: entry.strategy } : {}) }]) };
    try {
      writeFileSync(`${this.stateFile}.tmp`, JSON.stringify(state));
      renameSync(`${this.stateFile}.tmp`, this.stateFile);
      this.tally.state_writes++;
      this.stateFailure = undefined;
    } catch (err) {
      this.tally.state_write_failures++;
      this.stateFailure = `cannot write ${this.stateFile}: ${(err as Error).message}`;
      this.limitedLog.write('error', 'state', { file: this.stateFile }, `cannot write the OEE state file ${this.stateFile} (${(err as Error).message}); the figures will not survive a restart`);
    }
  }

  private readState(): void {
    if (!this.stateFile) return;
    let state: StateFile;
    try {
      state = JSON.parse(readFileSync(this.stateFile, 'utf8')) as StateFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err: (err as Error).message, file: this.stateFile }, 'the OEE state file is unreadable; the figures begin again');
      return;
    }
    if (state.version !== 1 || !Array.isArray(state.lines)) {
      log.warn({ file: this.stateFile }, 'the OEE state file is of another version; the figures begin again');
      return;
    }
    for (const [lineId, saved] of state.lines) {
      const entry = this.entryOf(lineId);
      entry.oee.restore(saved.figures);
      entry.speed = saved.speed;
      entry.strategy = saved.strategy;
    }
    log.info({ file: this.stateFile, lines: state.lines.length }, 'OEE figures restored from the state file');
  }
}

function summaryOf(entry: LineEntry): SummaryPayload {
  const shift = entry.oee.currentShift();
  return {
    ts: entry.oee.now(),
    speed: entry.speed,
    strategy: entry.strategy,
    availability: shift?.availability,
    performance: shift?.performance,
    quality: shift?.quality,
    oee: shift?.oee,
    goodCount: shift?.goodCount,
    scrapCount: shift?.scrapCount,
    shift: shift?.shift,
    shiftStart: shift?.start,
  };
}
