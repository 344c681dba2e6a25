// One way to put a layer around the broker's store (aedes-persistence's interface): a few methods
// replaced, every other property the store's own. Used by the session queue limit
// (queue-limit.ts), the packet ids (../packet-ids.ts) and the windowed drain (../windowed-drain.ts),
// which stack in that order around every store.
//
// Aedes calls some store methods on every QoS 1/2 publish (subscriptionsByTopic for the offline
// subscribers, outgoingEnqueueCombi, …), through every layer. A layer that bound the method anew on
// each read (`value.bind(target)` in the Proxy's get) allocated one function per layer per call:
// with three layers that was 4–6 % of the broker's busy time at 20k msgs/s and part of its GC
// (bench profile, docs/broker.md#cost-per-message). Here each method is bound once and the bound
// function kept, as long as the store's property still holds the same function.
//
// The store's own properties are read from the store itself, not through the Proxy receiver: a
// store's getters and methods may use private fields, which a Proxy lacks.
import type { AedesPersistence } from './types.js';

/** `store` with `overrides` in place of its methods of those names; every other property read from the store, its methods bound to it once. */
export function withStoreOverrides<T extends AedesPersistence>(store: T, overrides: object): T {
  const bound = new Map<PropertyKey, { of: unknown; method: unknown }>();
  return new Proxy(store, {
    get(target, property) {
      if (typeof property === 'string' && Object.hasOwn(overrides, property)) return (overrides as Record<string, unknown>)[property];
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== 'function') return value;
      const kept = bound.get(property);
      if (kept !== undefined && kept.of === value) return kept.method;
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      bound.set(property, { of: value, method });
      return method;
    },
  });
}
