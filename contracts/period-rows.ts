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
