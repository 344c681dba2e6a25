// What the devices report of their setpoints against what they acknowledged (docs/rules.md#intents):
// after a device acknowledges a speed or strategy command, a later message of it (by device time)
// that reports another value is a mismatch, and the command loop commands the winning intent again
// — at most `recommandLimit` times, until the device reports the acknowledged value again.
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import type { CommandPayload } from '../contracts/schemas.js';
import type { Acknowledged } from './command-types.js';
import type { DeviceEvent } from './device-table.js';
import { reportedSetpoints } from './intents.js';
import type { ParamValue } from './load.js';
import { setpointOf } from './safety-policy.js';

const log = logger('rules');

export function sameValue(a: ParamValue, b: ParamValue): boolean {
  return typeof a === 'number' && typeof b === 'number' ? Math.abs(a - b) < 1e-6 : a === b;
}

export interface SetpointReportsOptions {
  recommandLimit: number;
  now: () => number;
  count: (counter: string) => void;
  /** Command `line/target`'s setpoint `key` again: the device has `value`. */
  recommand: (line: string, target: string, key: string, value: ParamValue) => void;
}

export class SetpointReports {
  /** Per `line/target|key`, what the device last acknowledged; removed when a report differs (until the re-command's ack). */
  private acknowledged = new Map<string, Acknowledged>();
  /** Per `line/target|key`, re-commands since the device last reported the acknowledged value (limit + 1: given up). */
  private readonly recommands = new Map<string, number>();
  private readonly limited: LogLimiter;

  constructor(private readonly options: SetpointReportsOptions) {
    this.limited = new LogLimiter(log, { now: options.now });
  }

  /** The device took `command` (its ack at device time `ts`): for a reported setpoint, what it should report from then on. */
  acknowledge(line: string, target: string, command: CommandPayload, ts: number): void {
    const { key, value } = setpointOf(command.action, command.params);
    if (key === 'speed' || key === 'strategy') this.acknowledged.set(`${line}/${target}|${key}`, { value, ts, commandId: command.id });
  }

  /** A device's message: each setpoint it reports is judged against the acknowledged one. */
  judge(event: DeviceEvent): void {
    for (const { key: setpointKey, value } of reportedSetpoints(event)) {
      const key = `${event.line}/${event.device}|${setpointKey}`;
      const acked = this.acknowledged.get(key);
      if (!acked || event.payload.ts < acked.ts) continue;
      if (sameValue(value, acked.value)) this.recommands.delete(key);
      else this.mismatch(key, event, setpointKey, value, acked);
    }
  }

  private mismatch(key: string, event: DeviceEvent, setpointKey: string, value: ParamValue, acked: Acknowledged): void {
    const name = `${event.line}/${event.device}`;
    const tries = this.recommands.get(key) ?? 0;
    const limit = this.options.recommandLimit;
    if (tries > limit) return; // given up until it reports the acknowledged value again
    this.options.count('setpoint_mismatches');
    const fields = { target: name, key: setpointKey, reported: value, acknowledged: acked.value };
    if (tries === limit) {
      this.recommands.set(key, tries + 1);
      this.options.count('recommands_gave_up');
      this.limited.write('warn', 'recommand_gave_up', fields, `${name} reports ${setpointKey} ${String(value)}, not the acknowledged ${String(acked.value)}; not commanded again after ${tries} re-command(s) (rules.recommandLimit) until it reports it`);
      return;
    }
    this.acknowledged.delete(key); // the re-command's ack is judged next: one re-command per difference
    this.recommands.set(key, tries + 1);
    this.options.count('recommands');
    this.limited.write('warn', 'recommand', fields, `${name} reports ${setpointKey} ${String(value)}, not the acknowledged ${String(acked.value)}: commanding it again (${tries + 1} of ${limit})`);
    this.options.recommand(event.line, event.device, setpointKey, value);
  }

  snapshot(): Record<string, Acknowledged> {
    return Object.fromEntries(this.acknowledged);
  }

  restore(acknowledged: Record<string, Acknowledged> | undefined): void {
    this.acknowledged = new Map(Object.entries(acknowledged ?? {}));
  }
}
