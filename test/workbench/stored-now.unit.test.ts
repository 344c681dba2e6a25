// Which --from/--to values `rules diff` and `rules backtest` count from "now" (and so from the
// stored devices' time when that is ahead of the host's: workbench/stored-now.ts).
import { describe, expect, it } from 'vitest';
import { countsFromNow } from '../../workbench/stored-now.js';

describe('countsFromNow', () => {
  it('is true for now and relative times, false for absolute ones and for what is no time', () => {
    expect(['now', '-6h', 'now-30m', ' -2d ', '-90s'].map(countsFromNow)).toEqual([true, true, true, true, true]);
    expect(['1767000000000', '2026-01-01T08:00:00Z', '2030-01-01', 'yesterday', '-6y', ''].map(countsFromNow)).toEqual([false, false, false, false, false, false]);
  });
});
