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
// Stacked layers are one Proxy: a layer put around another layer's Proxy becomes a Proxy on the
// store itself, with both layers' overrides (the outer's win). An outer override still reaches
// the layer below through the object it was given (that layer's own Proxy), so each call goes
// down the stack as before; only the reads of methods no layer replaces skip the levels. The
// three stacked traps were 3.1–4.4 % of the busy time at 20k msgs/s (profile).
//
// The store's own properties are read from the store itself, not through the Proxy receiver: a
// store's getters and methods may use private fields, which a Proxy lacks.
import type { AedesPersistence } from './types.js';

interface Layered {
  store: AedesPersistence;
  overrides: Map<PropertyKey, unknown>;
}
/** Each Proxy made here: the store under every layer, and the overrides of all of them. */
const layers = new WeakMap<object, Layered>();

/**
 * `store` with `overrides` in place of its methods of those names; every other property read from
 * the store, its methods bound to it once. The overrides' own enumerable properties are taken when
 * the layer is made (pass the layer's fixed methods, not an object that changes later).
 */
export function withStoreOverrides<T extends AedesPersistence>(store: T, overrides: object): T {
  const below = layers.get(store);
  const base = below?.store ?? store;
  const merged = new Map(below?.overrides);
  for (const [name, value] of Object.entries(overrides)) merged.set(name, value);
  const bound = new Map<PropertyKey, { of: unknown; method: unknown }>();
  const proxy = new Proxy(base, {
    get(target, property) {
      if (merged.has(property)) return merged.get(property);
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== 'function') return value;
      const kept = bound.get(property);
      if (kept !== undefined && kept.of === value) return kept.method;
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      bound.set(property, { of: value, method });
      return method;
    },
  });
  layers.set(proxy, { store: base, overrides: merged });
  return proxy as T;
}
