// Which rules a device message concerns: the loaded rules indexed by kind, then line (exact or
// any), then device (exact, or a wildcard pattern tested per message), so that a message looks
// at its few candidate rules, not all of them. Absence rules are indexed apart: per expected
// device (a message from it ends its silence) and as a list the engine's tick checks.
import type { DeviceRecord, DeviceKind } from './device-table.js';
import type { CompiledRule } from './load.js';

interface Bucket {
  /** Rules naming the device exactly, by device. */
  exact: Map<string, CompiledRule[]>;
  /** Rules with a wildcard device pattern. */
  wildcard: CompiledRule[];
}

interface KindEntry {
  /** Rules naming the line exactly, by line. */
  lines: Map<string, Bucket>;
  anyLine: Bucket;
}

const NONE: readonly CompiledRule[] = [];

function emptyBucket(): Bucket {
  return { exact: new Map(), wildcard: [] };
}

export class RuleIndex {
  readonly byId: ReadonlyMap<string, CompiledRule>;
  /** Rules with `absent`: checked on every tick. */
  readonly absenceRules: readonly CompiledRule[];
  private readonly byKind = new Map<DeviceKind, KindEntry>();
  private readonly absenceByDevice = new Map<string, CompiledRule[]>();
  /** Marks a rule already evaluated for the current message (a rule matched by two of its device patterns runs once). */
  private messageStamp = 0;
  private readonly stamps = new WeakMap<CompiledRule, number>();

  constructor(rules: readonly CompiledRule[]) {
    this.byId = new Map(rules.map((rule) => [rule.id, rule]));
    const absenceRules: CompiledRule[] = [];
    for (const rule of rules) {
      if (rule.absent) {
        absenceRules.push(rule);
        for (const device of rule.absent.devices) push(this.absenceByDevice, `${rule.lineMatcher.exact}/${device}`, rule);
        continue;
      }
      this.add(rule);
    }
    this.absenceRules = absenceRules;
  }

  /** The absence rules expecting the device `line/device`. */
  absenceFor(id: string): readonly CompiledRule[] {
    return this.absenceByDevice.get(id) ?? NONE;
  }

  /**
   * Calls `evaluate` once for each rule that matches a message of `kind` from the device in
   * `record` (line, device pattern and device type): exact device matches first, then wildcards.
   */
  forEachMatching(kind: DeviceKind, record: DeviceRecord, evaluate: (rule: CompiledRule) => void): void {
    const entry = this.byKind.get(kind);
    if (!entry) return;
    const bucket = entry.lines.get(record.line);
    const exactLine = bucket?.exact.get(record.device) ?? NONE;
    const wildcardLine = bucket?.wildcard ?? NONE;
    const exactAnyLine = entry.anyLine.exact.get(record.device) ?? NONE;
    const wildcardAnyLine = entry.anyLine.wildcard;
    if (exactLine.length + wildcardLine.length + exactAnyLine.length + wildcardAnyLine.length === 0) return;
    const stamp = ++this.messageStamp;
    for (const list of [exactLine, exactAnyLine]) for (const rule of list) this.consider(rule, record, stamp, true, evaluate);
    for (const list of [wildcardLine, wildcardAnyLine]) for (const rule of list) this.consider(rule, record, stamp, false, evaluate);
  }

  private consider(rule: CompiledRule, record: DeviceRecord, stamp: number, exactDevice: boolean, evaluate: (rule: CompiledRule) => void): void {
    if (this.stamps.get(rule) === stamp) return; // matched by two of its device patterns
    if (!exactDevice && !rule.deviceMatchers.some((matcher) => matcher.test(record.device))) return;
    if (!rule.lineMatcher.test(record.line)) return;
    if (rule.type && record.type !== rule.type) return;
    this.stamps.set(rule, stamp);
    evaluate(rule);
  }

  private add(rule: CompiledRule): void {
    let entry = this.byKind.get(rule.kind);
    if (!entry) {
      entry = { lines: new Map(), anyLine: emptyBucket() };
      this.byKind.set(rule.kind, entry);
    }
    let bucket = entry.anyLine;
    if (rule.lineMatcher.exact) {
      bucket = entry.lines.get(rule.lineMatcher.exact) ?? emptyBucket();
      entry.lines.set(rule.lineMatcher.exact, bucket);
    }
    for (const matcher of rule.deviceMatchers) {
      if (matcher.exact) push(bucket.exact, matcher.exact, rule);
      else if (!bucket.wildcard.includes(rule)) bucket.wildcard.push(rule);
    }
  }
}

function push(map: Map<string, CompiledRule[]>, key: string, rule: CompiledRule): void {
  map.set(key, [...(map.get(key) ?? []), rule]);
}
