// Publish-or-spool, in order. While the broker is reachable and nothing is spooled, events go
// straight out at QoS 1. Otherwise they are appended to the disk spool, and replayed oldest
// first once the broker is back and every direct publish has settled.
//
// Why no double sends: MQTT.js queues publishes made while offline in memory and would send
// them on reconnect — so we never hand it a publish while it is disconnected (those go to the
// spool instead). A publish handed over while connected stays MQTT.js's job: if the link drops
// with it in flight, MQTT.js resends it on reconnect (QoS 1, at least once), and the replay
// waits until those have settled, so order is kept. A redelivery carries the same `seq`, which
// consumers recognise as a duplicate.
import type { Bus } from '../bus/index.js';
import { logger } from '../lib/log.js';
import { sleep } from '../lib/wait.js';
import type { DiskSpool } from './spool.js';

const log = logger('gateway');
const REPLAY_BATCH = 200;
/** Default for direct publishes awaiting their PUBACK; beyond it events overflow to the spool (bounded memory). */
export const DEFAULT_MAX_IN_FLIGHT = 1000;

export interface OutboxCounters {
  published: number;
  spooled: number;
  replayed: number;
  spool_full: number;
  publish_failed: number;
}

export class Outbox {
  readonly counters: OutboxCounters = { published: 0, spooled: 0, replayed: 0, spool_full: 0, publish_failed: 0 };
  private inFlight = 0;
  private replaying = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly offConnect: () => void;
  /** Resolves when the current replay finishes. */
  private replayDone: Promise<void> = Promise.resolve();

  constructor(
    private readonly bus: Bus,
    private readonly spool: DiskSpool,
    private readonly maxInFlight = DEFAULT_MAX_IN_FLIGHT,
  ) {
    // Replays once the broker is back (Bus.connected(): the bus says when a publish would go out now).
    this.offConnect = bus.onConnectionChange((connected) => {
      if (connected) this.kick();
    });
    this.timer = setInterval(() => this.kick(), 1000);
    this.timer.unref();
    this.kick();
  }

  /** Queues one event; never throws. */
  send(topic: string, payload: string, retain: boolean): void {
    if (this.stopped) return;
    if (this.replaying || this.inFlight >= this.maxInFlight || !this.spool.isEmpty() || !this.bus.connected()) {
      this.toSpool(topic, payload, retain);
      return;
    }
    this.inFlight++;
    this.bus.publish(topic, payload, { qos: 1, retain }).then(
      () => {
        this.inFlight--;
        this.counters.published++;
      },
      (err: unknown) => {
        this.inFlight--;
        this.counters.publish_failed++;
        log.warn({ err: (err as Error).message, topic }, 'publish failed; the event goes to the spool');
        this.toSpool(topic, payload, retain);
      },
    );
  }

  backlogBytes(): number {
    return this.spool.backlogBytes();
  }

  /** Waits (bounded by the caller) until nothing is spooled or in flight. */
  idle(): boolean {
    return this.inFlight === 0 && !this.replaying && this.spool.isEmpty();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.offConnect();
    // A replay waiting for PUBACKs from a broker that went away again is left to MQTT.js.
    await Promise.race([this.replayDone, sleep(2000)]);
    // Give direct publishes a moment to be acknowledged; what is left MQTT.js still holds.
    for (let i = 0; i < 40 && this.inFlight > 0; i++) await sleep(25);
    await this.spool.flush();
  }

  private toSpool(topic: string, payload: string, retain: boolean): void {
    this.counters.spooled++;
    this.spool.append({ topic, payload, retain }).then(
      () => this.kick(),
      (err: unknown) => {
        this.counters.spool_full++;
        log.error({ err: (err as Error).message, topic }, 'event dropped: could not spool it');
      },
    );
  }

  private kick(): void {
    if (this.replaying || this.stopped || this.spool.isEmpty() || !this.bus.connected()) return;
    this.replaying = true;
    this.replayDone = this.replay().finally(() => {
      this.replaying = false;
    });
  }

  private async replay(): Promise<void> {
    // Direct publishes first: they are older than anything in the spool.
    for (let i = 0; this.inFlight > 0; i++) {
      if (i > 400 || this.stopped || !this.bus.connected()) return;
      await sleep(25);
    }
    log.info({ backlogBytes: this.spool.backlogBytes() }, 'broker reachable: replaying the spool');
    while (!this.stopped && this.bus.connected()) {
      const { records, end } = await this.spool.read(REPLAY_BATCH);
      if (records.length === 0) {
        // Nothing left, or only corrupt records (skipped and counted by the spool): move past them.
        await this.spool.commit(end);
        return;
      }
      try {
        // One connection keeps publish order on the wire; awaiting the batch bounds what is in flight.
        await Promise.all(records.map((r) => this.bus.publish(r.topic, r.payload, { qos: 1, retain: r.retain })));
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'replay interrupted; it resumes when the broker is back');
        return;
      }
      this.counters.replayed += records.length;
      await this.spool.commit(end);
    }
  }
}
