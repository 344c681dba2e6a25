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
// synchronous depth of `_do`: past MAX_SYNC_DEPTH nested calls, the message goes back to the
// head of the backlog and a fresh stack (setImmediate) takes it from there, with the concurrency
// slot `released` just freed kept meanwhile — so newer messages queue behind it, and a delivery
// that finishes on another slot in between takes this message first: order is kept, whatever
// the concurrency. The fast path is unchanged.
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
  /** Frees one slot and starts the head of the backlog (mqemitter's `released`). */
  _released(): void;
}

/** A FIFO with O(1) push and shift (mqemitter uses push, shift and length; we also put one back). */
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

  /** Puts an item back at the head: O(1) right after a shift, which is how it is used. */
  unshift(item: T): number {
    if (this.head > 0) this.items[--this.head] = item;
    else this.items.unshift(item);
    return this.length;
  }
}

/** mqemitter as Aedes uses it, plus the backlog size its typings leave out. */
export type SafeMq = mqemitter.MQEmitter & { readonly length: number };

export function createSafeMq(options: SafeMqOptions): SafeMq {
  return guardMq(mqemitter({ concurrency: options.concurrency, matchEmptyLevels: true }), 'mqemitter');
}

/**
 * Installs both fixes on an mqemitter instance — the in-process one, or one whose local delivery
 * is mqemitter's (mqemitter-redis 7.2.1 delivers what it reads from Redis with mqemitter 7.1.0's
 * emit: broker/cluster.ts). `what` names it in the error when its internals are not the ones
 * this file relies on.
 */
export function guardMq<M extends mqemitter.MQEmitter>(mq: M, what: string): M & SafeMq {
  const internals = mq as unknown as MqInternals;
  const run = internals._do;
  if (typeof run !== 'function' || typeof internals._released !== 'function' || typeof internals.current !== 'number' || !Array.isArray(internals._messageQueue) || !Array.isArray(internals._messageCallbacks)) {
    // Fail at start, loudly, rather than run without the fix after an mqemitter upgrade.
    throw new Error(`${what} internals changed (_do, _released, current, _messageQueue, _messageCallbacks): broker/safe-mq.ts must be revisited for the new version`);
  }
  const queue = new Fifo<unknown>();
  const callbacks = new Fifo<unknown>();
  internals._messageQueue = queue;
  internals._messageCallbacks = callbacks;
  let depth = 0;
  internals._do = function guardedDo(this: MqInternals, message, callback) {
    if (depth >= MAX_SYNC_DEPTH) {
      queue.unshift(message);
      callbacks.unshift(callback);
      this.current++; // keep the slot `released` just freed, so emit() queues newer messages
      setImmediate(() => this._released()); // frees that slot and starts the head on a fresh stack
      return this;
    }
    depth++;
    try {
      return run.call(this, message, callback);
    } finally {
      depth--;
    }
  };
  return mq as M & SafeMq;
}
