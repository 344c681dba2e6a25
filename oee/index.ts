// The OEE service folder: per-line OEE from the event stream, published on lw/{line}/summary (docs/oee.md).
export { OeeService, OEE_SUBSCRIPTIONS, type OeeCounters, type OeeServiceOptions } from './service.js';
export { oeeConfigSchema, type OeeConfig } from './config.js';
export { LineOee, conditionOf, DOWNTIME_REASONS, type OeeFigures, type OeeOptions, type LineCondition, type DowntimeReason } from './line-oee.js';
