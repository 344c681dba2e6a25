// Retry delays: exponential, capped, with jitter between half and all of the step.
import { describe, expect, it } from 'vitest';
import { backoff } from '../../historian/index.js';
import { classify } from '../../historian/influx.js';

describe('backoff', () => {
  it('doubles per attempt up to the cap, jittered within [half, full]', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const step = Math.min(10_000, 100 * 2 ** attempt);
      const delays = Array.from({ length: 200 }, () => backoff(attempt, 100, 10_000));
      expect(Math.min(...delays)).toBeGreaterThanOrEqual(step / 2);
      expect(Math.max(...delays)).toBeLessThanOrEqual(step);
      expect(new Set(delays).size).toBeGreaterThan(1);
    }
  });

  it('classifies network errors as retryable with the cause in the message', () => {
    const failure = classify(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }));
    expect(failure).toEqual({ kind: 'retry', message: 'InfluxDB is unreachable: ECONNREFUSED connect ECONNREFUSED 127.0.0.1:9' });
  });
});
