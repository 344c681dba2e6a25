// The disk store's LevelDB, with the operations of one event-loop turn coalesced: every put,
// del and batch asked for in a turn is written as one LevelDB batch, and every get as one
// getMany (docs/broker.md#persistence, "Where a persistent subscriber's time went").
//
// aedes-persistence-level awaits one LevelDB operation at a time per message — a queued message
// costs a put, its delivery a get, a del and two puts (outgoingUpdate), its PUBACK a get and a
// batch — and each operation is a separate trip through libuv's thread pool and LevelDB's writer
// lock. With a persistent subscriber those trips, not the broker's JavaScript, set the pace:
// ~1.3k messages/s whether the backlog goes out one message at a time or 64 at once. Aedes runs
// many live deliveries at once (mqemitter's slots), so in one turn many messages
// ask for the same kind of operation: here they share one trip.
//
// What each caller sees is unchanged: its promise resolves once its write is in LevelDB's log
// (the batch's write(2), as for a single put: docs/broker.md "What holds, exactly") or with the
// value its get read, and operations a caller awaits one after the other stay in that order.
// Operations of different callers in one turn had no order between them before (their
// promises raced in the thread pool); in one batch, writes to one key apply in the order asked.
// Everything else (iterators, clear, open, close, status) goes to the database as it is; close
// writes what is pending first.

/** One LevelDB write as a batch operation (abstract-level), with the caller's encodings. */
interface WriteOperation {
  type: 'put' | 'del';
  key: string;
  value?: unknown;
  [option: string]: unknown;
}

type Options = Record<string, unknown> | undefined;

/** The LevelDB methods aedes-persistence-level 9 calls (abstract-level 3), the ones coalesced here. */
export interface CoalescedLevel {
  get(key: string, options?: Options): Promise<unknown>;
  getMany(keys: string[], options?: Options): Promise<unknown[]>;
  put(key: string, value: unknown, options?: Options): Promise<void>;
  del(key: string, options?: Options): Promise<void>;
  batch(operations: WriteOperation[], options?: Options): Promise<void>;
  close(): Promise<void>;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(err: unknown): void;
}

interface PendingGets {
  keys: string[];
  options: Options;
  waiters: Waiter<unknown>[];
}

/** Counts of what reached the database, for the tests' and docs' work-per-message figures. */
export interface CoalescingCounts {
  /** LevelDB batch writes made (each holds the writes of one turn). */
  batches: number;
  /** Writes (put/del) asked for. */
  writes: number;
  /** getMany calls made. */
  reads: number;
  /** Gets asked for. */
  gets: number;
}

export interface Coalesced<T> {
  db: T;
  counts: CoalescingCounts;
}

/** `db` with the put/del/batch/get of each event-loop turn coalesced; the same object for everything else. */
export function coalesceLevel<T extends object>(db: T): Coalesced<T> {
  const level = db as unknown as CoalescedLevel;
  for (const name of ['get', 'getMany', 'put', 'del', 'batch', 'close'] as const) {
    if (typeof level[name] !== 'function') throw new Error(`the LevelDB database has no ${name}(): broker/persistence/level-coalescing.ts was written for abstract-level 3 (level 10)`);
  }
  const counts: CoalescingCounts = { batches: 0, writes: 0, reads: 0, gets: 0 };
  let writes: WriteOperation[] = [];
  let writeWaiters: Waiter<void>[] = [];
  /** Gets of this turn, grouped by their options (getMany takes one set of options). */
  let gets = new Map<string, PendingGets>();
  let scheduled: NodeJS.Immediate | undefined;

  const schedule = (): void => {
    scheduled ??= setImmediate(flush);
  };

  function flush(): Promise<unknown> {
    scheduled = undefined;
    const done: Promise<unknown>[] = [];
    if (writes.length > 0) {
      const operations = writes;
      const waiters = writeWaiters;
      writes = [];
      writeWaiters = [];
      counts.batches++;
      done.push(
        level.batch(operations).then(
          () => waiters.forEach((waiter) => waiter.resolve()),
          (err: unknown) => waiters.forEach((waiter) => waiter.reject(err)),
        ),
      );
    }
    for (const group of gets.values()) {
      counts.reads++;
      done.push(
        level.getMany(group.keys, group.options).then(
          (values) => group.waiters.forEach((waiter, index) => waiter.resolve(values[index])),
          (err: unknown) => group.waiters.forEach((waiter) => waiter.reject(err)),
        ),
      );
    }
    gets = new Map();
    return Promise.all(done);
  }

  const write = (operations: WriteOperation[]): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      counts.writes += operations.length;
      writes.push(...operations);
      writeWaiters.push({ resolve, reject });
      schedule();
    });

  const overrides: Omit<CoalescedLevel, 'getMany' | 'batch'> & { batch(operations?: WriteOperation[], options?: Options): unknown } = {
    get: (key, options) =>
      new Promise<unknown>((resolve, reject) => {
        counts.gets++;
        const groupKey = JSON.stringify(options ?? {});
        let group = gets.get(groupKey);
        if (!group) gets.set(groupKey, (group = { keys: [], options, waiters: [] }));
        group.keys.push(key);
        group.waiters.push({ resolve, reject });
        schedule();
      }),
    put: (key, value, options) => write([{ ...options, type: 'put', key, value }]),
    del: (key, options) => write([{ ...options, type: 'del', key }]),
    batch(operations?: WriteOperation[], options?: Options) {
      if (operations) return write(operations.map((operation) => ({ ...options, ...operation })));
      // The chained form (db.batch().del(k).put(k, v).write()): collected, then written with the turn's writes.
      const chained: WriteOperation[] = [];
      const chain = {
        put: (key: string, value: unknown, putOptions?: Options) => (chained.push({ ...putOptions, type: 'put', key, value }), chain),
        del: (key: string, delOptions?: Options) => (chained.push({ ...delOptions, type: 'del', key }), chain),
        write: (writeOptions?: Options) => write(chained.map((operation) => ({ ...writeOptions, ...operation }))),
      };
      return chain;
    },
    close: async () => {
      if (scheduled) clearImmediate(scheduled);
      await flush();
      await level.close();
    },
  };
  const bound = new Map<PropertyKey, unknown>();
  const coalesced = new Proxy(db, {
    get(target, property) {
      if (typeof property === 'string' && Object.hasOwn(overrides, property)) return overrides[property as keyof typeof overrides];
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== 'function') return value;
      let method = bound.get(property);
      if (method === undefined) bound.set(property, (method = (value as (...args: unknown[]) => unknown).bind(target)));
      return method;
    },
  });
  return { db: coalesced, counts };
}
