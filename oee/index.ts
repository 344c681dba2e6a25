// The OEE service folder: per-line and per-station OEE per hour, shift and day, and every stop (docs/oee.md).
export { OeeService, OEE_SUBSCRIPTIONS, type OeeCounters, type OeeServiceOptions } from './service.js';
export { oeeConfigSchema, calendarSchema, DEFAULT_SHIFTS, type OeeConfig, type CalendarConfig } from './config.js';
export { ShiftCalendar, MINUTE_MS, PERIOD_KINDS, type Period, type PeriodKind, type MinuteInfo } from './calendar.js';
export { LineFigures, lineCondition, isStop, LINE_STOP_PRIORITY, type Condition, type PeriodFigures, type LineFiguresOptions, type LineFiguresSnapshot } from './line-figures.js';
