// A point in time as a user writes it — in a URL parameter (/api/history's from/to) or on the
// command line (`rules backtest --from/--to`): `now`, relative to now (`-6h`, `now-30m`, `-2d`),
// epoch milliseconds, or an ISO 8601 date.

/** The units of a relative time or a bucket width, in ms. */
export const TIME_UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** What parseTime takes, for error messages. */
export const TIME_FORMS = '"now", a relative time like "-6h" or "now-30m" (s, m, h, d), epoch milliseconds or an ISO date such as 2026-01-01T08:00:00Z';

/** `value` as ms since the epoch, relative times counted back from `now`; undefined when it is none of TIME_FORMS. */
export function parseTime(value: string, now: number): number | undefined {
  const text = value.trim();
  if (text === 'now') return now;
  const relative = /^(?:now)?-([1-9][0-9]{0,5})(s|m|h|d)$/.exec(text);
  if (relative) return now - Number(relative[1]) * TIME_UNIT_MS[relative[2] as keyof typeof TIME_UNIT_MS];
  if (/^[0-9]{1,15}$/.test(text)) return Number(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const parsed = Date.parse(text);
    return Number.isNaN(parsed) ? undefined : parsed;
  }
  return undefined;
}
