// The historian in a worker thread (historian.thread "worker", docs/historian.md#worker-thread):
// the same Historian (historian/thread-entry.ts) on a ThreadBus to this thread's bus
// (bus/thread-bridge.ts), so the spool, line protocol, data quality and InfluxDB writes run on
// the second core while this thread — the broker's, in `linewatch up` — keeps routing.
//
// Seen from here it is a Service like the Historian: counters, health, info, labelled counters
// and data quality are the worker's last snapshot (sent every SNAPSHOT_EVERY_MS, and when it
// starts and stops), so they may be that much behind. A worker that exits or fails is `down`
// with its reason, and from then on every delivery is refused (ServedBus.fail): nothing is
// acknowledged that nobody stored — a QoS 1 publisher keeps a refused message and sends it again,
// a persistent session keeps it in the broker — until the historian is stopped. It is not
// restarted: `linewatch up` and /healthz show the historian down with the worker's reason.
import { MessageChannel, Worker } from 'node:worker_threads';
import { qualityCounters, type DeviceQuality } from './data-quality.js';
import { serveBus, type ServedBus } from '../bus/thread-bridge.js';
import { logger, writeForwardedLog } from '../lib/log.js';
import { withTimeout } from '../lib/wait.js';
import type { LabelledCounter } from '../lib/metrics.js';
import { healthFrom, worstHealth, type Counters, type Health, type Service, type ServiceInfo } from '../lib/service.js';
import type { HistorianOptions } from './index.js';
import type { FromHistorianThread, HistorianThreadData, ToHistorianThread } from './thread-protocol.js';

const log = logger('historian');
const ENTRY = new URL('./thread-entry.js', import.meta.url);
/** How long stop() waits for a start still under way before it stops the worker anyway. */
const START_WAIT_MS = 10_000;
/** How long past the historian's own drain (drainTimeoutMs) stop() waits for the worker's answer before ending it. */
const STOP_ANSWER_SPARE_MS = 2000;

type Snapshot = Extract<FromHistorianThread, { op: 'snapshot' }>;

/** What the worker answers a start or a stop with. */
type Answer = 'started' | 'stopped';
interface Awaited {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class HistorianThread implements Service {
  readonly name = 'historian';
  private worker: Worker | undefined;
  private served: ServedBus | undefined;
  private snapshot: Snapshot | undefined;
  private gaugeSet: ReadonlySet<string> = new Set();
  private quality = new Map<string, DeviceQuality['totals']>();
  /** Why the worker is gone, once it is (exited, failed). */
  private gone: string | undefined;
  /** The answers the worker owes, one per request: a start, a stop. */
  private readonly awaited = new Map<Answer, Awaited>();
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: HistorianOptions) {}

  /** The InfluxDB the worker writes to, once started. */
  get influxUrl(): string | undefined {
    return this.snapshot?.influxUrl;
  }

  get gauges(): ReadonlySet<string> {
    return this.gaugeSet;
  }

  start(): Promise<void> {
    this.starting ??= this.startWorker();
    return this.starting;
  }

  private async startWorker(): Promise<void> {
    const { port1, port2 } = new MessageChannel();
    this.served = serveBus(this.options.bus, port1);
    const data: HistorianThreadData = {
      config: this.options.config,
      dataDir: this.options.dataDir,
      influxUrl: this.options.influxUrl,
      drainTimeoutMs: this.options.drainTimeoutMs,
      worker: this.options.worker,
      busPort: port2,
    };
    const worker = new Worker(ENTRY, { workerData: data, transferList: [port2] });
    this.worker = worker;
    worker.on('message', (message: FromHistorianThread) => this.onMessage(message));
    worker.on('error', (err) => {
      this.gone ??= `the historian's worker thread failed: ${err.message}`;
      log.error({ err }, "the historian's worker thread failed; the messages it did not store stay with their publishers");
    });
    worker.on('exit', (code) => {
      this.gone ??= `the historian's worker thread exited (code ${code})`;
      // Not asked to stop: keep refusing what comes for it until stop() (stopWorker closes the bus).
      if (this.stopping === undefined) this.served?.fail(this.gone);
      for (const awaited of this.awaited.values()) awaited.reject(new Error(this.gone));
      this.awaited.clear();
    });
    try {
      await this.ask({ op: 'start' }, 'started');
    } catch (err) {
      // Not started, so nobody will stop it: end the worker here.
      this.gone ??= `the historian did not start: ${(err as Error).message}`;
      await this.served.close(this.gone);
      await worker.terminate();
      throw err;
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopWorker();
    return this.stopping;
  }

  private async stopWorker(): Promise<void> {
    // A start under way is waited for, bounded (whatever its outcome): a stop answered before it would leave it hanging.
    await withTimeout(this.starting ?? Promise.resolve(), START_WAIT_MS, 'the historian worker to finish starting').catch(() => undefined);
    const worker = this.worker;
    if (worker === undefined || this.gone !== undefined) {
      await this.served?.close('the historian stopped');
      await worker?.terminate();
      return;
    }
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    try {
      // The worker drains what is queued (drainTimeoutMs) and answers; past that, it is ended below.
      await withTimeout(this.ask({ op: 'stop' }, 'stopped'), (this.options.drainTimeoutMs ?? 5000) + STOP_ANSWER_SPARE_MS, "the historian worker's stop");
    } catch (err) {
      log.error({ err }, 'the historian worker did not stop in time; ending it (what it had not stored is refused, so its publishers keep it)');
    } finally {
      this.gone ??= 'stopped';
      await this.served?.close('the historian stopped');
      // The worker ends once its port is closed; terminate() if it has not (a stuck stop).
      const timer = setTimeout(() => void worker.terminate(), 2000);
      await exited;
      clearTimeout(timer);
    }
  }

  /** InfluxDB is back (a managed influxd restarted): the writer tries at once. */
  influxBack(): void {
    this.post({ op: 'influxBack' });
  }

  counters(): Counters {
    return this.snapshot?.counters ?? {};
  }

  labelledCounters(): LabelledCounter[] {
    return qualityCounters(this.snapshot?.quality ?? []);
  }

  info(): ServiceInfo {
    return { ...(this.snapshot?.info ?? {}), thread: 'worker' };
  }

  health(): Health {
    const gone = healthFrom([{ failed: this.gone !== undefined, status: 'down', reason: this.gone ?? '' }]);
    return this.snapshot === undefined ? worstHealth([gone, { status: 'down', reasons: ['the worker thread has not started yet'] }]) : worstHealth([gone, this.snapshot.health]);
  }

  /** One device's data quality totals as of the worker's last snapshot. */
  deviceQuality(line: string, device: string): Pick<DeviceQuality, 'totals'> | undefined {
    const totals = this.quality.get(`${line}/${device}`);
    return totals === undefined ? undefined : { totals };
  }

  private post(message: ToHistorianThread): void {
    if (this.gone === undefined) this.worker?.postMessage(message);
  }

  private ask(message: ToHistorianThread, answer: Answer): Promise<void> {
    if (this.gone !== undefined) return Promise.reject(new Error(this.gone));
    return new Promise<void>((resolve, reject) => {
      this.awaited.set(answer, { resolve, reject });
      this.post(message);
    });
  }

  private answered(answer: Answer, err?: Error): void {
    const awaited = this.awaited.get(answer);
    this.awaited.delete(answer);
    if (err === undefined) awaited?.resolve();
    else awaited?.reject(err);
  }

  private onMessage(message: FromHistorianThread): void {
    switch (message.op) {
      case 'log':
        writeForwardedLog(message.line, message.level);
        return;
      case 'snapshot':
        this.snapshot = message;
        this.gaugeSet = new Set(message.gauges);
        this.quality = new Map(message.quality.map((device) => [`${device.line}/${device.device}`, device.totals]));
        return;
      case 'started':
      case 'stopped':
        this.answered(message.op);
        return;
      case 'failed':
        this.answered(message.during, Object.assign(new Error(message.message), { name: message.name }));
        return;
      case 'loaded':
        return;
    }
  }
}
