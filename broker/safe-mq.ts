// The message router handed to Aedes (its `mq` option): mqemitter with the aedes#193 stack
// overflow fixed. Why (docs/broker.md#aedes193):
//
// mqemitter runs at most `concurrency` deliveries at once and queues the rest. When a delivery
// finishes, its `released` callback takes the next queued message and calls `_do` on it
// synchronously. `_do` asks qlobber for the topic's listeners and hands them to fastparallel,
// which — when there are NO listeners — calls `released` again synchronously. So a queue of N
// messages whose topic nobody listens to any more drains as one recursion N deep
// (released → _do → parallel → released → …) and throws `RangeError: Maximum call stack size
// exceeded` (usually inside qlobber's `_match2`, the deepest frame). That is exactly what a
// QoS 0 flood does: a slow subscriber holds all slots, thousands of publishes queue up, the
// subscriber disconnects, its listener is removed, and the backlog drains recursively.
//
// The fix keeps mqemitter (pinned to 7.1.0, the version Aedes 1.2.0 uses) and bounds the
// synchronous depth of `_do`: past MAX_SYNC_DEPTH nested calls, the next message continues on
// a fresh stack (setImmediate), with its concurrency slot reserved meanwhile so later messages
// still queue behind it and per-topic order is kept. The fast path is unchanged.
//
// Second fix, same place: mqemitter keeps its backlog in two arrays and takes from them with
// Array#shift, which moves every remaining element — O(backlog) per delivery, so an overloaded
// broker spends most of its time in `released` (28% of the CPU at 80k msgs/s offered in the
// benchmark) and delivers less the more it is offered. The arrays are replaced with O(1) queues.
import mqemitter from 'mqemitter';

/** Nested `_do` calls allowed on one stack; each costs ~4 frames, the stack holds ~10 000. */
export const MAX_SYNC_DEPTH = 64;

export interface SafeMqOptions {
  concurrency: number;
}

/** The mqemitter internals this fix relies on (mqemitter 7.1.0). */
interface MqInternals {
  current: number;
  _messageQueue: unknown[] | Fifo<unknown>;
  _messageCallbacks: unknown[] | Fifo<unknown>;
  _do(message: unknown, callback: unknown): unknown;
}

/** A FIFO with O(1) push and shift (mqemitter only uses push, shift and length). */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): number {
    this.items.push(item);
    return this.length;
  }

  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    // Drop the consumed prefix once it is most of the array: amortised O(1).
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

/** mqemitter as Aedes uses it, plus the backlog size its typings leave out. */
export type SafeMq = mqemitter.MQEmitter & { readonly length: number };

export function createSafeMq(options: SafeMqOptions): SafeMq {
  const mq = mqemitter({ concurrency: options.concurrency, matchEmptyLevels: true });
  const internals = mq as unknown as MqInternals;
  const run = internals._do;
  if (typeof run !== 'function' || typeof internals.current !== 'number' || !Array.isArray(internals._messageQueue) || !Array.isArray(internals._messageCallbacks)) {
    // Fail at start, loudly, rather than run without the fix after an mqemitter upgrade.
    throw new Error('mqemitter internals changed (_do, current, _messageQueue, _messageCallbacks): broker/safe-mq.ts must be revisited for the new version');
  }
  internals._messageQueue = new Fifo();
  internals._messageCallbacks = new Fifo();
  let depth = 0;
  internals._do = function guardedDo(this: MqInternals, message, callback) {
    if (depth >= MAX_SYNC_DEPTH) {
      this.current++; // hold the slot `released` just freed, so newer messages queue behind this one
      setImmediate(() => {
        this.current--;
        guardedDo.call(this, message, callback);
      });
      return this;
    }
    depth++;
    try {
      return run.call(this, message, callback);
    } finally {
      depth--;
    }
  };
  return mq as SafeMq;
}
