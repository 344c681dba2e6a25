// Where a shadow rule set and the live rules differ, live (docs/dashboard.md#shadow): the recent
// live commands (lw/{line}/{device}/cmd) and shadow commands (lw/_shadow/{line}/{device}/cmd), and
// those of either side with no counterpart on the other — same line, target, action and params,
// at most `toleranceMs` apart — once that long has passed on the command's line. Commands are
// stamped in their line's event time (docs/rules.md#which-time), so "passed" is judged in it too:
// the line's devices' newest ts plus the time since (contracts/event-clock.ts), as the engine does.
// `rules diff` does the same over stored history (workbench/shadow-diff.ts); this is the live,
// bounded view of it for GET /api/shadow.
import type { DecodeOnce } from '../../bus/bus.js';
import { decode, EventClock, unshadowTopic, type CommandPayload } from '../../contracts/index.js';
import { DEFAULT_TOLERANCE_MS } from '../../contracts/timeline-tolerance.js';

export interface ShadowCommandView {
  line: string;
  device: string;
  id: string;
  action: string;
  params: CommandPayload['params'];
  origin: string;
  ts: number;
}

export interface ShadowDifference extends ShadowCommandView {
  /** `shadow-only`: the shadow set sent it and the live rules did not; `live-only`: the reverse. */
  side: 'shadow-only' | 'live-only';
}

export interface ShadowReport {
  /** A shadow set was heard from (something under lw/_shadow/ since the dashboard started). */
  active: boolean;
  toleranceMs: number;
  /** Newest first, at most `maxDifferences`. */
  differences: ShadowDifference[];
  /** The commands compared: how many of each side are kept now. */
  live: number;
  shadow: number;
}

export interface ShadowViewOptions {
  /** Two commands at most this far apart (ms) are counterparts; default `rules diff`'s (DEFAULT_TOLERANCE_MS). */
  toleranceMs: number;
  /** Commands kept per side (the oldest go first). */
  maxCommands: number;
  maxDifferences: number;
  /** Engine time (the dashboard's clock); each line's event time runs on it. */
  now: () => number;
}

const DEFAULTS: ShadowViewOptions = { toleranceMs: DEFAULT_TOLERANCE_MS, maxCommands: 500, maxDifferences: 50, now: () => Date.now() };

export class ShadowView {
  private readonly options: ShadowViewOptions;
  private readonly live: ShadowCommandView[] = [];
  private readonly shadow: ShadowCommandView[] = [];
  /** Each line's event time, from its devices' state and telemetry. */
  private readonly lineTime = new EventClock();
  private active = false;

  constructor(options: Partial<ShadowViewOptions> = {}) {
    this.options = { ...DEFAULTS, ...options };
  }

  /** One bus message: a live or a shadow command is kept, a device's state or telemetry moves its line's time, anything else is not this view's. */
  handle(topic: string, payload: Buffer, decoded: DecodeOnce = () => decode(topic, payload)): void {
    const live = unshadowTopic(topic);
    if (live !== undefined) {
      this.active = true;
      const result = decode(live, payload);
      if (result.ok && result.message.kind === 'cmd') this.keep(this.shadow, result.message.line, result.message.device, result.message.payload);
      return;
    }
    const result = decoded();
    if (!result.ok) return;
    const message = result.message;
    if (message.kind === 'cmd') this.keep(this.live, message.line, message.device, message.payload);
    else if (message.kind === 'state' || message.kind === 'telemetry') this.lineTime.observe(message.line, message.payload.ts, this.options.now());
  }

  report(): ShadowReport {
    const { toleranceMs, maxDifferences } = this.options;
    const now = this.options.now();
    const settledBefore = (line: string): number => this.lineTime.now(line, now) - toleranceMs;
    const differences: ShadowDifference[] = [
      ...this.unmatched(this.shadow, this.live, settledBefore).map((c) => ({ ...c, side: 'shadow-only' as const })),
      ...this.unmatched(this.live, this.shadow, settledBefore).map((c) => ({ ...c, side: 'live-only' as const })),
    ];
    differences.sort((x, y) => y.ts - x.ts);
    return { active: this.active, toleranceMs, differences: differences.slice(0, maxDifferences), live: this.live.length, shadow: this.shadow.length };
  }

  /** The commands of `side` old enough to judge (and within what `other` still holds) that have no counterpart in `other`. */
  private unmatched(side: readonly ShadowCommandView[], other: readonly ShadowCommandView[], settledBefore: (line: string) => number): ShadowCommandView[] {
    const oldestOther = other[0]?.ts ?? Number.NEGATIVE_INFINITY;
    const used = new Set<ShadowCommandView>();
    const out: ShadowCommandView[] = [];
    for (const command of side) {
      if (command.ts > settledBefore(command.line) || (other.length >= this.options.maxCommands && command.ts < oldestOther)) continue;
      const partner = other.find((o) => !used.has(o) && Math.abs(o.ts - command.ts) <= this.options.toleranceMs && sameCommand(o, command));
      if (partner) used.add(partner);
      else out.push(command);
    }
    return out;
  }

  private keep(list: ShadowCommandView[], line: string, device: string, command: CommandPayload): void {
    // A re-send (same id) is the same command.
    if (list.some((c) => c.id === command.id && c.line === line && c.device === device)) return;
    list.push({ line, device, id: command.id, action: command.action, params: command.params, origin: command.origin, ts: command.ts });
    list.sort((x, y) => x.ts - y.ts);
    if (list.length > this.options.maxCommands) list.splice(0, list.length - this.options.maxCommands);
  }
}

function sameCommand(x: ShadowCommandView, y: ShadowCommandView): boolean {
  return x.line === y.line && x.device === y.device && x.action === y.action && canonical(x.params) === canonical(y.params);
}

function canonical(params: CommandPayload['params']): string {
  return JSON.stringify(Object.fromEntries(Object.keys(params).sort().map((key) => [key, params[key]])));
}
