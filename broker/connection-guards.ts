// What every connection passes before Aedes reads it (the listeners' `accept`): the connection
// limit, the packet size guard, the publisher throttle (backpressure), write batching and the
// dedupe fix — and the start-time check that Aedes still pulls client bytes with read(), which
// the packet guard and the throttle rely on.
import type { IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import type { Aedes } from 'aedes';
import type { LogLimiter } from '../lib/log-limit.js';
import { assertReadsPulled, type PublisherThrottle } from './backpressure.js';
import type { BrokerConfig } from './config.js';
import { dropOnlyExactCopies } from './dedupe.js';
import type { Accept } from './listeners.js';
import { guardPacketSize, type OnViolation } from './packet-guard.js';
import type { BrokerCounters, RejectReason } from './stats.js';
import { batchWrites } from './write-batching.js';

function ignoreError(): void {}

export class ConnectionGuards {
  /** Streams the packet guard closed (already counted). */
  private readonly guarded = new WeakSet<object>();
  /** Shared by every connection: accept() then allocates no closure (memory per idle connection). */
  private readonly onOversizeOrMalformed: OnViolation;
  private readonly onStreamClose: (this: Duplex) => void;

  constructor(
    private readonly aedes: Aedes,
    private readonly config: Pick<BrokerConfig, 'maxConnections' | 'maxPacketBytes'>,
    private readonly throttle: PublisherThrottle,
    private readonly counters: BrokerCounters,
    private readonly limitedLog: LogLimiter,
  ) {
    const { guarded } = this;
    this.onOversizeOrMalformed = (verdict, stream, remote) => {
      guarded.add(stream);
      const reason: RejectReason = verdict.reason === 'oversize' ? 'oversize_packet' : 'malformed_packet';
      counters.reject(reason);
      limitedLog.write('warn', reason, { remote, declared: verdict.declared, maxPacketBytes: config.maxPacketBytes }, verdict.reason === 'oversize' ? 'closed a connection whose packet is larger than broker.maxPacketBytes' : 'closed a connection sending bytes that are not MQTT');
    };
    this.onStreamClose = function (this: Duplex): void {
      counters.connections--;
      throttle.forget(this);
    };
  }

  readonly accept: Accept = (stream: Duplex, remote: string, req?: IncomingMessage): void => {
    const { counters, config } = this;
    if (counters.connections >= config.maxConnections) {
      counters.reject('max_connections');
      this.limitedLog.write('warn', 'max_connections', { remote, maxConnections: config.maxConnections }, 'refused a connection: broker.maxConnections reached');
      stream.destroy();
      return;
    }
    counters.connections++;
    stream.on('close', this.onStreamClose); // shared handlers, not closures: memory per idle connection
    guardPacketSize(stream, config.maxPacketBytes, remote, this.onOversizeOrMalformed);
    this.throttle.gate(stream); // outermost: while the broker is behind, nothing is read at all
    batchWrites(stream); // one write per event-loop turn instead of one per packet
    stream.on('error', ignoreError); // socket errors end the client; Aedes logs them via clientError
    dropOnlyExactCopies(this.aedes.handle(stream, req)); // Aedes would drop a message that arrives after a newer one
  };

  /** Whether the packet guard closed this stream (its error is counted already). */
  closedByGuard(stream: object): boolean {
    return this.guarded.has(stream);
  }
}

/** Hands Aedes an in-memory connection that never sends CONNECT and checks how it reads it. */
export function checkReadsPulled(aedes: Aedes): void {
  const probe = new Duplex({ read() {}, write(_chunk, _encoding, callback) { callback(); } });
  probe.on('error', ignoreError);
  try {
    aedes.handle(probe);
    assertReadsPulled(probe);
  } finally {
    probe.destroy();
  }
}
