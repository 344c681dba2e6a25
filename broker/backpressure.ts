// Backpressure on publishers: while more than `high` messages wait for a delivery slot in the
// router, the broker reads nothing more from any client socket; it reads again once the backlog
// is down to `low`. Unread bytes stay in the socket and kernel buffers, so TCP slows the
// publishers down instead of the broker buffering without bound — and the event loop spends its
// time delivering instead of parsing more input it cannot deliver (which is how an overloaded
// Aedes collapses: every loop iteration reads all sockets, so fewer deliveries finish per second).
//
// The gate replaces each stream's `read` and so relies on an Aedes 1.2.0 internal: its client
// pulls the socket's bytes with `conn.read(null)` on 'readable' and after each batch
// (lib/client.js `nextBatch`), never in flowing mode. assertReadsPulled() checks that at the
// broker's start on an in-memory stream right after `aedes.handle()` (startBroker) and throws if an Aedes upgrade reads otherwise: in flowing
// mode ('data', pipe) the bytes would flow past the gate and backpressure would be gone silently
// (and past packet-guard.ts's size check, which wraps the same `read`).
import type { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';

interface GatedStream extends EventEmitter {
  read(size?: number): unknown;
  readonly destroyed: boolean;
}

const INNER_READ = Symbol('linewatch.innerRead');
type Gated = GatedStream & { [INNER_READ]: GatedStream['read'] };

/** Call right after `aedes.handle(stream)`; throws if Aedes does not pull the stream's bytes with read(). */
export function assertReadsPulled(stream: Readable): void {
  if (stream.readableFlowing === true || stream.listenerCount('readable') === 0) {
    throw new Error("aedes changed (it no longer pulls client bytes with read() on 'readable'): broker/packet-guard.ts and broker/backpressure.ts must be revisited for the new version");
  }
}

export class PublisherThrottle {
  private paused = false;
  private readonly waiting = new Set<GatedStream>();
  private check: NodeJS.Immediate | undefined;
  /** The `read` of every gated stream: one function for all of them, no closure per connection. */
  private readonly gatedRead: (this: Gated, size?: number) => unknown;

  constructor(
    private readonly backlog: () => number,
    private readonly high: number,
    /** Called for every read refused because the broker is behind. */
    private readonly onRefusedRead: () => void = () => undefined,
    private readonly low = Math.floor(high / 2),
  ) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the stream is `this` inside gatedRead
    const throttle = this;
    this.gatedRead = function (this: Gated, size?: number): unknown {
      if (throttle.overloaded()) {
        throttle.onRefusedRead();
        throttle.waiting.add(this);
        throttle.check ??= setImmediate(() => throttle.resumeIfCaughtUp());
        return null;
      }
      throttle.waiting.delete(this);
      return this[INNER_READ](size);
    };
  }

  /**
   * Aedes pulls a client's bytes with `read()` when the socket is readable and after each batch
   * of packets is done; refusing that read (returning null) is how it is paused. The stream is
   * woken with a 'readable' event once the backlog is low again.
   */
  gate(stream: GatedStream): void {
    if (typeof stream.read !== 'function') throw new Error('PublisherThrottle.gate: the stream has no read(); broker/backpressure.ts gates streams Aedes reads with read()');
    (stream as Gated)[INNER_READ] = stream.read;
    stream.read = this.gatedRead;
  }

  /** Whether reads are refused now because the broker is behind (as of the last read or check). */
  get readingPaused(): boolean {
    return this.paused;
  }

  /** Forgets a closed stream. */
  forget(stream: GatedStream): void {
    this.waiting.delete(stream);
  }

  stop(): void {
    clearImmediate(this.check);
    this.check = undefined;
    this.waiting.clear();
  }

  private overloaded(): boolean {
    const backlog = this.backlog();
    if (this.paused && backlog <= this.low) this.paused = false;
    else if (!this.paused && backlog > this.high) this.paused = true;
    return this.paused;
  }

  /** Runs once per event-loop turn while streams wait: the backlog is checked right after each batch of deliveries. */
  private resumeIfCaughtUp(): void {
    if (this.overloaded()) {
      this.check = setImmediate(() => this.resumeIfCaughtUp());
      return;
    }
    this.check = undefined;
    const streams = [...this.waiting];
    this.waiting.clear();
    for (const stream of streams) if (!stream.destroyed) stream.emit('readable');
  }
}
