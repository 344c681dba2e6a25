// How far apart in time two commands or alarm transitions may be and still be the same when two
// timelines are compared: `rules diff` and `rules backtest` (workbench/timeline-diff.ts) and the
// dashboard's live shadow-vs-live view (dashboard/server/shadow-view.ts) use this one default.

/** Two items at most this far apart (ms) can be the same: a few engine ticks, less than any cooldown. */
export const DEFAULT_TOLERANCE_MS = 2_000;
