// The period rows: what the historian stores once per period rather than once per event (OEE per
// hour/shift/day, each stop interval, each device's data quality per interval). They are kept in
// a retention policy of their own (historian.periodRetentionPolicy, for retention.periods; by
// default INF), not in raw's few days, so a plant still reads last month's OEE by shift, downtime
// Pareto and data quality. The historian writes them there; the dashboard and Grafana read them
// from there (docs/historian.md#retention).

/** The measurements of period rows. */
export const PERIOD_MEASUREMENTS: ReadonlySet<string> = new Set(['oee', 'downtime', 'data_quality']);

/** The retention policy of the period rows unless historian.periodRetentionPolicy says otherwise (its default). */
export const DEFAULT_PERIOD_POLICY = 'periods';

/**
 * The counts of a data_quality row (one device, one interval; historian/data-quality.ts): messages
 * stored; gaps (times the seq skipped ahead) and skipped (the seqs skipped); duplicates; reorders
 * (late within the window, each filling a skipped seq); resets (a device restarted its count);
 * stale (outside the run); late_ts and future_ts (timestamps behind the device's newest, or ahead
 * of the historian's clock, by more than historian.quality's bounds).
 */
export const QUALITY_FIELDS = ['messages', 'gaps', 'skipped', 'duplicates', 'reorders', 'resets', 'stale', 'late_ts', 'future_ts'] as const;
export type QualityField = (typeof QUALITY_FIELDS)[number];
export type QualityCounts = Record<QualityField, number>;
