// Coalesces a connection's outgoing packets into one write per event-loop turn.
//
// mqtt-packet corks the socket for each packet it writes and uncorks it on the next tick, and
// Aedes delivers each message from its own setImmediate callback — so every delivered packet
// became its own writev syscall (19% of the broker's CPU at 80k msgs/s to one subscriber).
// Here the first cork of a turn holds until the end of the turn, and the per-packet uncorks are
// ignored: the turn's packets leave in one writev. Latency added: at most one loop turn.
//
// The functions are shared by every connection and the only per-connection state is one flag
// on the stream, so an idle connection pays no closures for this (memory per connection).
import { Writable, type Duplex } from 'node:stream';

const CORKED = Symbol('linewatch.corked');
type BatchedStream = Duplex & { [CORKED]?: boolean };

const { cork, uncork } = Writable.prototype;

function flush(stream: BatchedStream): void {
  stream[CORKED] = false;
  uncork.call(stream);
}

function corkForThisTurn(this: BatchedStream): void {
  if (this[CORKED]) return;
  this[CORKED] = true;
  cork.call(this);
  setImmediate(flush, this);
}

function ignoreUncork(): void {}

/** Whether batchWrites holds this stream's writes until the end of the event-loop turn (packet-writer.ts writes only to those). */
export function isBatched(stream: Duplex): boolean {
  return stream.cork === corkForThisTurn;
}

export function batchWrites(stream: Duplex): void {
  // Streams with their own cork/uncork would be bypassed below: fail loudly instead.
  if (stream.cork !== cork || stream.uncork !== uncork) throw new Error('batchWrites: the stream overrides cork/uncork; broker/write-batching.ts must call its own methods');
  stream.cork = corkForThisTurn;
  stream.uncork = ignoreUncork;
}
