// What "now" is for a range over stored history (`rules diff`, `rules backtest`: `--to now`,
// `--from -1h`): the later of the host's clock and just past the newest device event stored (of
// the line, if one is given). Everything the historian stores is timed in its devices' time
// (docs/rules.md#which-time), which runs ahead of the host's after a `linewatch up --speedup`
// run or on a device set to another year; counted from the host's clock, "the last hour" would
// then miss what is newest. A host clock ahead of the history keeps its own "now".
import { isValidId } from '../contracts/topics.js';
import { connectInflux, type InfluxEndpoint } from '../lib/influx-url.js';
import { parseTime } from '../lib/time-arg.js';

/** Whether `value` (a --from/--to as the user wrote it) is counted from now: `now`, `-6h`, `now-30m`. */
export function countsFromNow(value: string): boolean {
  const at = parseTime(value, 0);
  return at !== undefined && at !== parseTime(value, 1);
}

/**
 * Now for the stored history at `endpoint` (its device events: telemetry and state), at least
 * `hostNow`. When InfluxDB cannot say (unreachable, no such database, nothing stored) it is
 * `hostNow`; the command's own queries then report what is wrong.
 */
export async function storedNow(endpoint: InfluxEndpoint, hostNow: number, line?: string): Promise<number> {
  if (line !== undefined && !isValidId(line)) return hostNow;
  const connection = connectInflux(endpoint);
  try {
    // No time range: InfluxQL bounds a query without GROUP BY time() by nothing, so a point ahead of the host counts.
    const where = line === undefined ? '' : ` WHERE "line" = '${line}'`;
    const raw = (await connection.influx.queryRaw(`SELECT last("seq") FROM "telemetry", "state"${where}`, { precision: 'ms', database: endpoint.database })) as RawResponse;
    const newest = (raw.results?.[0]?.series ?? []).map((series) => Number(series.values[0]?.[0])).filter((time) => Number.isFinite(time));
    return Math.max(hostNow, ...newest.map((time) => time + 1));
  } catch {
    return hostNow;
  } finally {
    connection.close();
  }
}

interface RawResponse {
  results?: Array<{ error?: string; series?: Array<{ values: Array<Array<string | number | null>> }> }>;
}
