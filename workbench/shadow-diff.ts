// `linewatch rules diff`: where a shadow rule set (rules.shadowDir) and the live one differed over
// a time range, from what the historian stored (docs/rules.md#shadow). The live commands
// (`commands`, event issued) and alarm transitions (`alarms`) are the baseline, the shadow ones
// (`shadow_commands`, `shadow_alarms`) the candidate; workbench/timeline-diff.ts pairs them.
//
// Compared: each command's target, action and params (not its outcome: a live one is done or
// expired, a shadow one is always `shadow`), and each alarm's rule-driven transitions, raise and
// return (an operator's ack, shelve or clear exists only live: nobody acknowledges a shadow alarm).
// They are rules' output, few per minute, so one query per measurement reads the whole range.
import { connectInflux, type InfluxEndpoint } from '../lib/influx-url.js';
import { isValidId } from '../contracts/topics.js';
import { describeItem, diffTimelines, type TimelineAlarm, type TimelineCommand, type TimelineDiff, type TimelineItem, type TimelineParam } from './timeline-diff.js';

export interface ShadowDiffOptions {
  influx: InfluxEndpoint;
  /** The range, ms since the epoch: from inclusive, to exclusive. */
  from: number;
  to: number;
  /** Only this line. */
  line?: string;
  toleranceMs?: number;
}

export interface ShadowDiffResult {
  diff: TimelineDiff;
  live: { commands: number; alarms: number };
  shadow: { commands: number; alarms: number };
  from: number;
  to: number;
  line?: string;
}

type Row = Record<string, string | number | null>;

/** Reads both timelines of the range from InfluxDB and compares them (live = baseline, shadow = candidate). */
export async function shadowDiff(options: ShadowDiffOptions): Promise<ShadowDiffResult> {
  if (options.line !== undefined && !isValidId(options.line)) throw new Error(`--line ${JSON.stringify(options.line)}: not a line id (1–64 of A–Z a–z 0–9 _ -)`);
  if (!(options.from < options.to)) throw new Error(`--from must be before --to (got ${new Date(options.from).toISOString()} → ${new Date(options.to).toISOString()})`);
  const connection = connectInflux(options.influx);
  try {
    const query = async (text: string): Promise<Row[]> => {
      const raw = (await connection.influx.queryRaw(text, { precision: 'ms', database: options.influx.database })) as RawResponse;
      const result = raw.results?.[0];
      if (result?.error) throw new Error(`InfluxDB refused the query: ${result.error}`);
      return (result?.series ?? []).flatMap((series) => series.values.map((row) => Object.fromEntries(series.columns.map((column, i) => [column, row[i] ?? null]))));
    };
    const where = (extra: string): string => `WHERE ${extra} AND time >= ${options.from}ms AND time < ${options.to}ms${options.line ? ` AND "line" = '${options.line}'` : ''}`;
    const commands = (measurement: string): string => `SELECT "id", "action", "device", "line", "params", "origin" FROM "${measurement}" ${where(`"event" = 'issued'`)}`;
    const alarms = (measurement: string): string => `SELECT "alarm", "rule", "device", "line", "transition" FROM "${measurement}" ${where(`("transition" = 'raise' OR "transition" = 'return')`)}`;
    const [liveCommands, shadowCommands, liveAlarms, shadowAlarms] = await Promise.all([query(commands('commands')), query(commands('shadow_commands')), query(alarms('alarms')), query(alarms('shadow_alarms'))]);
    const live: TimelineItem[] = [...liveCommands.map(commandItem), ...liveAlarms.map(alarmItem)];
    const shadow: TimelineItem[] = [...shadowCommands.map(commandItem), ...shadowAlarms.map(alarmItem)];
    return {
      diff: diffTimelines(live, shadow, { toleranceMs: options.toleranceMs }),
      live: { commands: liveCommands.length, alarms: liveAlarms.length },
      shadow: { commands: shadowCommands.length, alarms: shadowAlarms.length },
      from: options.from,
      to: options.to,
      ...(options.line ? { line: options.line } : {}),
    };
  } finally {
    connection.close();
  }
}

function commandItem(row: Row): TimelineCommand {
  let params: Record<string, TimelineParam>;
  try {
    params = JSON.parse(String(row.params ?? '{}')) as Record<string, TimelineParam>;
  } catch {
    params = { unreadable: String(row.params) };
  }
  return { kind: 'command', at: Number(row.time), target: String(row.device), action: String(row.action), params, line: String(row.line), ...(row.origin ? { origin: String(row.origin) } : {}), ...(row.id ? { id: String(row.id) } : {}) };
}

/** An alarm transition as its rule made it: `raise` or `return` (the state after it depends on operators, who act only live). */
function alarmItem(row: Row): TimelineAlarm {
  return { kind: 'alarm', at: Number(row.time), id: String(row.alarm), state: String(row.transition), line: String(row.line), ...(row.rule ? { rule: String(row.rule) } : {}), ...(row.device ? { device: String(row.device) } : {}) };
}

/** The report: one line per difference, with its time; `+` only in the shadow, `-` only live, `~` changed. */
export function formatShadowDiff(result: ShadowDiffResult): string[] {
  const { diff } = result;
  const time = (item: TimelineItem): string => new Date(item.at).toISOString();
  const rows: { at: number; text: string }[] = [
    ...diff.added.map((item) => ({ at: item.at, text: `+ ${time(item)}  ${describeItem(item)}  (shadow only)` })),
    ...diff.missing.map((item) => ({ at: item.at, text: `- ${time(item)}  ${describeItem(item)}  (live only)` })),
    ...diff.changed.map((change) => ({ at: change.before.at, text: `~ ${time(change.before)}  live ${describeItem(change.before)}  →  shadow ${time(change.after)} ${describeItem(change.after)}  (${change.fields.join(', ')})` })),
  ].sort((x, y) => x.at - y.at);
  const range = `${new Date(result.from).toISOString()} → ${new Date(result.to).toISOString()}${result.line ? `, line ${result.line}` : ''}`;
  return [
    `# shadow vs live, ${range}: live ${result.live.commands} commands and ${result.live.alarms} alarm transitions, shadow ${result.shadow.commands} and ${result.shadow.alarms}; matched within ${diff.toleranceMs} ms`,
    ...rows.map((row) => row.text),
    `# ${diff.added.length} only in the shadow, ${diff.missing.length} only live, ${diff.changed.length} changed, ${diff.same} the same`,
  ];
}

interface RawResponse {
  results?: Array<{ error?: string; series?: Array<{ columns: string[]; values: Array<Array<string | number | null>> }> }>;
}
