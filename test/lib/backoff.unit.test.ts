// lib/backoff.ts: exponential, capped, optional equal jitter, reset.
import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay } from '../../lib/backoff.js';

describe('backoff', () => {
  it('doubles from initialMs per attempt up to maxMs, exactly without jitter', () => {
    const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
    expect(Array.from({ length: 9 }, () => backoff.next())).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    expect(backoff.attempts).toBe(9);
  });

  it('starts again from initialMs after reset()', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000 });
    backoff.next();
    backoff.next();
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    expect([backoff.next(), backoff.next()]).toEqual([100, 200]);
  });

  it('with equal jitter stays within [half, full] of the step, and spans it', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const step = Math.min(10_000, 100 * 2 ** attempt);
      expect(backoffDelay(attempt, { initialMs: 100, maxMs: 10_000, jitter: 'equal', random: () => 0 })).toBe(step / 2);
      expect(backoffDelay(attempt, { initialMs: 100, maxMs: 10_000, jitter: 'equal', random: () => 0.5 })).toBe((step * 3) / 4);
      const delays = Array.from({ length: 200 }, () => backoffDelay(attempt, { initialMs: 100, maxMs: 10_000, jitter: 'equal' }));
      expect(Math.min(...delays)).toBeGreaterThanOrEqual(step / 2);
      expect(Math.max(...delays)).toBeLessThanOrEqual(step);
      expect(new Set(delays).size).toBeGreaterThan(1);
    }
  });

  it('stays finite and capped after very many attempts', () => {
    expect(backoffDelay(10_000, { initialMs: 200, maxMs: 60_000 })).toBe(60_000);
  });
});
