// The OEE service: each line's OEE from its event stream, published on lw/{line}/summary.
//
//   bus: lw/+/+/state | telemetry | status | cmd/outcome ──► LineOee per line (oee/line-oee.ts)
//   every oee.publishIntervalMs: one summary per line ──► lw/{line}/summary (DELIVERY.summary)
//
// The figures live in memory: a restart begins them again (docs/oee.md). The historian stores
// the summaries like any other message (measurement `line`).
import type { Bus, DecodeOnce, Unsubscribe } from '../bus/bus.js';
import { DELIVERY, STRATEGIES, topics, type Message, type Strategy, type SummaryPayload } from '../contracts/index.js';
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { healthFrom, type Health, type Service } from '../lib/service.js';
import type { OeeConfig } from './config.js';
import { LineOee } from './line-oee.js';

const log = logger('oee');

/** What the service reads: the device events that make a line's condition and output, and command outcomes (speed, strategy). */
export const OEE_SUBSCRIPTIONS = ['lw/+/+/state', 'lw/+/+/telemetry', 'lw/+/+/status', topics.allOutcomes];

export interface OeeServiceOptions {
  bus: Bus;
  config: OeeConfig;
  /** Clock of the summaries (ms since epoch). */
  clock?: () => number;
}

/** Counters and gauges of the OEE service. */
export type OeeCounters = ReturnType<OeeService['counters']>;

interface LineEntry {
  oee: LineOee;
  speed?: number;
  strategy?: Strategy;
}

export class OeeService implements Service {
  readonly name = 'oee';
  readonly gauges: ReadonlySet<string> = new Set(['lines', 'subscribed', 'publish_failing']);
  private readonly lines = new Map<string, LineEntry>();
  private readonly limitedLog = new LogLimiter(log);
  private unsubscribe: Unsubscribe | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Why the last summary could not be published; cleared by the next one that is. */
  private publishFailure: string | undefined;
  private readonly tally = {
    received: 0,
    dropped_invalid: 0,
    summaries_published: 0,
    summary_failures: 0,
  };

  constructor(private readonly options: OeeServiceOptions) {}

  async start(): Promise<void> {
    if (this.unsubscribe) return;
    this.unsubscribe = await this.options.bus.subscribe(OEE_SUBSCRIPTIONS, this.onMessage, { qos: 1 }).catch((err: unknown) => {
      throw new Error(`the OEE service could not subscribe to ${OEE_SUBSCRIPTIONS.join(', ')} (${(err as Error).message}); its MQTT account needs the oee role: linewatch devices add NAME --role oee`, { cause: err });
    });
    this.timer = setInterval(() => void this.publishSummaries(), this.options.config.publishIntervalMs);
    this.timer.unref();
    log.info({ publishIntervalMs: this.options.config.publishIntervalMs }, 'OEE service started');
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = undefined;
    await unsubscribe?.().catch((err: unknown) => log.warn({ err }, 'unsubscribe failed'));
    this.limitedLog.flush();
  }

  counters() {
    return {
      ...this.tally,
      lines: this.lines.size,
      subscribed: this.unsubscribe ? 1 : 0,
      publish_failing: this.publishFailure ? 1 : 0,
    };
  }

  /** down: not subscribed, so no figures; degraded: the last summary could not be published. */
  health(): Health {
    return healthFrom([
      { failed: !this.unsubscribe, status: 'down', reason: 'not subscribed to the device events (not started, or stopped)' },
      { failed: this.unsubscribe !== undefined && !this.options.bus.connected(), status: 'down', reason: 'not connected to the broker: no events in, no summaries out (it reconnects by itself)' },
      { failed: this.publishFailure !== undefined, status: 'degraded', reason: `summaries are not being published: ${this.publishFailure}` },
    ]);
  }

  /** The figures of every line now, as they would be published (for tests and the curious). */
  summaries(now = (this.options.clock ?? Date.now)()): Map<string, SummaryPayload> {
    const out = new Map<string, SummaryPayload>();
    for (const [lineId, entry] of this.lines) out.set(lineId, summaryOf(entry, now));
    return out;
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
        oee: new LineOee({
          idealRatePerMin: lineOptions?.idealRatePerMin ?? config.idealRatePerMin,
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
        entry.oee.observeState(message.device, v.state, v.ts);
        if (v.strategy) entry.strategy = v.strategy;
        break;
      }
      case 'telemetry': {
        const entry = this.entryOf(message.line);
        const v = message.payload;
        entry.oee.observeTelemetry(message.device, v.values, v.ts, v.type);
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

  private async publishSummaries(): Promise<void> {
    for (const [lineId, summary] of this.summaries()) {
      try {
        await this.options.bus.publish(topics.summary(lineId), JSON.stringify(summary), DELIVERY.summary);
        this.tally.summaries_published++;
        this.publishFailure = undefined;
      } catch (err) {
        this.tally.summary_failures++;
        this.publishFailure = `line ${lineId}: ${(err as Error).message}`;
        this.limitedLog.write('warn', 'summary', { line: lineId }, `could not publish the OEE summary of line ${lineId}: ${(err as Error).message}`);
      }
    }
  }
}

function summaryOf(entry: LineEntry, now: number): SummaryPayload {
  const figures = entry.oee.figures(now);
  return {
    ts: now,
    speed: entry.speed,
    strategy: entry.strategy,
    availability: figures.availability,
    performance: figures.performance,
    quality: figures.quality,
    oee: figures.oee,
    goodCount: figures.goodCount,
    scrapCount: figures.scrapCount,
  };
}
