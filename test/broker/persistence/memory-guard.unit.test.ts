// The linear memory store replaces every outgoing method of aedes-persistence's memory store; a
// version with other outgoing methods (which would read queues it never fills) is refused.
import { describe, expect, it } from 'vitest';
import { assertOutgoingShape, OUTGOING_METHODS, upstreamMemoryClass } from '../../../broker/persistence/memory.js';

function fakeClass(methods: readonly string[]): unknown {
  const fake = function FakeStore(): void {};
  for (const name of methods) (fake.prototype as Record<string, unknown>)[name] = () => undefined;
  return fake;
}

describe('the guard on aedes-persistence memory store', () => {
  it('accepts the installed aedes-persistence 11', () => {
    expect(() => upstreamMemoryClass()).not.toThrow();
  });

  it('refuses a store with another outgoing method, one missing, or no class', () => {
    expect(() => assertOutgoingShape(fakeClass([...OUTGOING_METHODS]))).not.toThrow();
    expect(() => assertOutgoingShape(fakeClass([...OUTGOING_METHODS, 'outgoingCount']))).toThrow(/outgoingCount.*must be revisited/);
    expect(() => assertOutgoingShape(fakeClass(OUTGOING_METHODS.slice(1)))).toThrow(/must be revisited/);
    expect(() => assertOutgoingShape({})).toThrow(/no longer exports a class/);
  });
});
