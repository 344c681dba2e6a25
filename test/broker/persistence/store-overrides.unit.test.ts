// broker/persistence/store-overrides.ts: the layer the queue limit, the packet ids and the
// windowed drain put around the store. Its methods are bound once (Aedes reads some per message),
// overrides win, and a store whose methods use private fields still works through it.
import { describe, expect, it } from 'vitest';
import { withStoreOverrides } from '../../../broker/persistence/store-overrides.js';
import type { AedesPersistence } from '../../../broker/persistence/types.js';

class PrivateStore {
  #calls = 0;
  ready = true;
  subscriptionsByTopic(topic: string): string {
    this.#calls++;
    return `${topic}:${this.#calls}`;
  }
  outgoingUpdate(): string {
    return 'the store';
  }
}

const wrap = (store: PrivateStore, overrides: object): PrivateStore => withStoreOverrides(store as unknown as AedesPersistence, overrides) as unknown as PrivateStore;

describe('withStoreOverrides', () => {
  it('gives the same bound method on every read, so a call per message allocates none', () => {
    const wrapped = wrap(new PrivateStore(), {});
    const first = wrapped.subscriptionsByTopic;
    expect(wrapped.subscriptionsByTopic).toBe(first);
    // Called detached (as Aedes's steps do), it still reaches the store's private field.
    expect(first('a')).toBe('a:1');
    expect(first('b')).toBe('b:2');
  });

  it('takes the override before the store, and reads other properties from the store', () => {
    const store = new PrivateStore();
    const wrapped = wrap(store, { outgoingUpdate: () => 'the layer' });
    expect(wrapped.outgoingUpdate()).toBe('the layer');
    expect(wrapped.ready).toBe(true);
    store.ready = false;
    expect(wrapped.ready).toBe(false);
  });

  it('binds again when the store replaces a method (another layer patched it)', () => {
    const store = new PrivateStore();
    const wrapped = wrap(store, {});
    const before = wrapped.subscriptionsByTopic;
    store.subscriptionsByTopic = (topic: string) => `patched ${topic}`;
    expect(wrapped.subscriptionsByTopic).not.toBe(before);
    expect(wrapped.subscriptionsByTopic('x')).toBe('patched x');
  });

  it('stacks: each layer sees the next one, the store last', () => {
    const store = new PrivateStore();
    const inner = wrap(store, { outgoingUpdate: () => 'inner' });
    const outer = wrap(inner, {});
    expect(outer.outgoingUpdate()).toBe('inner');
    expect(outer.subscriptionsByTopic).toBe(outer.subscriptionsByTopic);
    expect(outer.subscriptionsByTopic('s')).toBe('s:1');
  });

  it('stacks as one Proxy: an outer override reaches the inner layer, which reaches the store', () => {
    const store = new PrivateStore();
    const calls: string[] = [];
    const inner = wrap(store, {
      subscriptionsByTopic: (topic: string) => {
        calls.push('inner');
        return store.subscriptionsByTopic(topic);
      },
    });
    const outer = wrap(inner, {
      subscriptionsByTopic: (topic: string) => {
        calls.push('outer');
        return inner.subscriptionsByTopic(topic);
      },
      outgoingUpdate: () => 'outer',
    });
    expect(outer.subscriptionsByTopic('t')).toBe('t:1');
    expect(calls).toEqual(['outer', 'inner']);
    expect(outer.outgoingUpdate()).toBe('outer');
    expect(inner.outgoingUpdate()).toBe('the store');
    // A method no layer replaces is the store's, bound once, whichever layer it is read through.
    const third = wrap(outer, {});
    expect(third.ready).toBe(true);
    expect(third.outgoingUpdate()).toBe('outer');
  });
});
