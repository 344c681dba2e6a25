// The rules engine: device events in, alerts and acknowledged commands out (docs/rules.md).
//
// A message goes through: topic → validate → device record (latest state/values, watermark) →
// the rules indexed for its kind, line and device → per rule instance (one per device, or per
// line for lineCount) a small state machine idle → pending (`for`) → active → (clear, `clearFor`)
// → idle. Entering active runs the actions; leaving it clears the alert and runs onClear.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { Bus, DecodeOnce, Unsubscribe } from '../bus/bus.js';
import { decode, type MessageOf } from '../contracts/decode.js';
import type { AlertPayload, DeviceState, DeviceType } from '../contracts/schemas.js';
import { SequenceTracker } from '../contracts/sequence.js';
import { DELIVERY, isValidId, topics, type MessageKind } from '../contracts/topics.js';
import { logger } from '../lib/log.js';
import type { Counters, Service } from '../lib/service.js';
import { systemClock, type Clock } from './clock.js';
import { CommandCenter, type CommandCenterSnapshot, type CommandEvent, type OutcomeEvent } from './commands.js';
import { rulesSettingsSchema, type RulesSettings } from './config.js';
import type { Scope } from './expr.js';
import { formatLoadError, loadRuleDir, type CompiledCommand, type CompiledRule, type ParsedFile, type RuleSet } from './load.js';

const log = logger('rules');

export type DeviceKind = 'state' | 'telemetry' | 'status';
/** A device message the rules read: state, telemetry or status (contracts/decode.ts). */
export type DeviceEvent = MessageOf<DeviceKind>;
/** The kinds handle() takes: the device events and command acks. */
const HANDLED_KINDS: ReadonlySet<MessageKind> = new Set<MessageKind>(['state', 'telemetry', 'status', 'ack']);

export interface AlertEvent {
  type: 'alert';
  line: string;
  alert: AlertPayload;
}

export interface SuspendEvent {
  type: 'suspended';
  line: string;
  ruleId: string;
  target: string;
  until: number;
  reason: string;
}

export type EngineEvent = CommandEvent | OutcomeEvent | AlertEvent | SuspendEvent;

export interface RulesEngineOptions {
  bus: Bus;
  /** Folder of rule YAML files; watched and reloaded on change. */
  dir: string;
  /** Where windows, timers, alerts and setpoints are kept across restarts; none if undefined. */
  stateFile?: string;
  /** Time source; ManualClock in tests and `rules test`. */
  clock?: Clock;
  /** Tuning (ack timeout, retries, lateness…); defaults in rules/config.ts. */
  settings?: Partial<RulesSettings>;
  /** Reload when files in `dir` change (default true). */
  watch?: boolean;
  /** Every command, outcome, alert and suspension, in order (e.g. for `rules test`'s timeline). */
  onEvent?: (event: EngineEvent) => void;
}

interface DeviceRecord {
  /** `line/device` */
  id: string;
  line: string;
  device: string;
  type?: DeviceType;
  state?: DeviceState;
  /** The state before the current one (for transitions). */
  enteredFrom?: DeviceState;
  reason?: string;
  status?: 'online' | 'offline';
  values: Record<string, number>;
  /** Highest device ts seen: events older than it are late. */
  watermark: number;
  /** Engine time of the last sign of life (any message but an offline status). */
  aliveAt?: number;
}

interface Instance {
  ruleId: string;
  key: string;
  line: string;
  device?: string;
  phase: 'idle' | 'pending' | 'active';
  /** Event time the condition became true (pending) / the clear condition became true (active). */
  since?: number;
  sinceClock?: number;
  clearSince?: number;
  clearSinceClock?: number;
  activatedAt?: number;
  window?: { ts: number[]; v: number[] };
  alert?: AlertPayload;
}

interface Bucket {
  exact: Map<string, CompiledRule[]>;
  wild: CompiledRule[];
}

interface Snapshot {
  version: 1;
  savedAt: number;
  devices: DeviceRecord[];
  instances: (Instance & { hash: string })[];
  commands: CommandCenterSnapshot;
}

const EMPTY: CompiledRule[] = [];

export class RulesEngine implements Service {
  readonly name = 'rules';
  private readonly bus: Bus;
  private readonly clock: Clock;
  private readonly settings: RulesSettings;
  private readonly center: CommandCenter;
  private readonly c: Record<string, number> = {
    received: 0,
    invalid: 0,
    duplicates: 0,
    late: 0,
    reordered: 0,
    evaluations: 0,
    activations: 0,
    deactivations: 0,
    alerts_raised: 0,
    alerts_cleared: 0,
    reloads: 0,
    reload_errors: 0,
    bad_targets: 0,
  };
  private ruleSet: RuleSet = { rules: [], safety: { defaults: {}, targets: {}, oscillation: { window: 60_000, reversals: 3, suspendFor: 300_000 } }, errors: [] };
  private readonly lastGood = new Map<string, ParsedFile>();
  private rulesById = new Map<string, CompiledRule>();
  private index = new Map<string, { lines: Map<string, Bucket>; anyLine: Bucket }>();
  private absenceByDevice = new Map<string, CompiledRule[]>();
  private absenceRules: CompiledRule[] = [];
  private readonly devices = new Map<string, DeviceRecord>();
  private readonly lineDevices = new Map<string, DeviceRecord[]>();
  private readonly instances = new Map<string, Map<string, Instance>>();
  /** Instances with a running `for` or `clearFor` timer. */
  private readonly timed = new Set<Instance>();
  private readonly sequences = new SequenceTracker();
  private evalStamp = 0;
  private readonly stamps = new WeakMap<CompiledRule, number>();
  private startedAt = 0;
  private lastSnapshotAt = 0;
  private cancelTick?: () => void;
  private unsubscribe?: Unsubscribe;
  private watcher?: FSWatcher;
  private reloadTimer?: NodeJS.Timeout;
  private running = false;
  /** The folder did not exist at start: looked for again every few seconds. */
  private dirMissing = false;
  private dirCheckedAt = 0;

  constructor(private readonly options: RulesEngineOptions) {
    this.bus = options.bus;
    this.clock = options.clock ?? systemClock;
    this.settings = rulesSettingsSchema.parse(options.settings ?? {});
    this.center = new CommandCenter({
      bus: this.bus,
      clock: this.clock,
      // Unique per start; on the system clock a random part keeps two engines started in the same ms apart
      // (a ManualClock keeps ids reproducible for `rules test`).
      idPrefix: `c${this.clock.now().toString(36)}${this.clock === systemClock ? randomBytes(3).toString('hex') : ''}`,
      ackTimeoutMs: this.settings.ackTimeoutMs,
      retries: this.settings.retries,
      ttlMs: this.settings.commandTtlMs,
      safety: this.ruleSet.safety,
      onEvent: (e) => this.options.onEvent?.(e),
      onSuspend: (s) => this.onSuspend(s),
      count: (name) => this.count(name),
    });
  }

  /** Loads the rules (throws listing every error if a file is broken), restores state, subscribes. */
  async start(): Promise<void> {
    if (this.running) return;
    this.dirMissing = !existsSync(this.options.dir);
    if (this.dirMissing) log.warn({ dir: this.options.dir }, 'the rules folder does not exist; running with no rules until it does');
    const set = this.dirMissing ? { ...this.ruleSet, rules: [] } : loadRuleDir(this.options.dir, this.lastGood);
    if (set.errors.length > 0) {
      throw new Error(`rules: ${set.errors.length} error(s) in ${this.options.dir}:\n  ${set.errors.map(formatLoadError).join('\n  ')}\nFix them (check with: linewatch rules check ${this.options.dir}).`);
    }
    this.apply(set);
    this.startedAt = this.clock.now();
    this.lastSnapshotAt = this.startedAt;
    this.restore();
    this.running = true;
    this.unsubscribe = await this.bus.subscribe([...topics.allDeviceEvents], (topic, payload, decoded) => this.handle(topic, payload, decoded), { qos: 1 });
    if (this.options.watch !== false && !this.dirMissing) this.watchDir();
    this.scheduleTick();
    log.info({ dir: this.options.dir, rules: set.rules.length }, 'rules engine started');
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.cancelTick?.();
    this.watcher?.close();
    clearTimeout(this.reloadTimer);
    await this.unsubscribe?.();
    this.saveSnapshot();
  }

  counters(): Counters {
    let active = 0;
    for (const m of this.instances.values()) for (const i of m.values()) if (i.phase === 'active') active++;
    return { ...this.c, rules: this.ruleSet.rules.length, active_instances: active, pending_commands: this.center.pendingCount() };
  }

  /** The currently loaded rules and the errors of the last (re)load. */
  rules(): RuleSet {
    return this.ruleSet;
  }

  /** Active instances (rule id, key, since) — for status displays and tests. */
  activeInstances(): { ruleId: string; key: string; activatedAt: number }[] {
    const out: { ruleId: string; key: string; activatedAt: number }[] = [];
    for (const m of this.instances.values()) for (const i of m.values()) if (i.phase === 'active') out.push({ ruleId: i.ruleId, key: i.key, activatedAt: i.activatedAt ?? 0 });
    return out;
  }

  /** Reloads the rule files now; a broken file keeps its last good rules. Returns the errors. */
  reload(): string[] {
    const set = loadRuleDir(this.options.dir, this.lastGood);
    this.c.reloads!++;
    const errors = set.errors.map(formatLoadError);
    if (errors.length > 0) {
      this.c.reload_errors!++;
      for (const e of errors) log.error(`rule reload: ${e} — the last good version of that file keeps running`);
    }
    this.apply(set);
    return errors;
  }

  /** One MQTT message from the bus; `decoded` is the bus's (decoded once per message), or it is decoded here. */
  handle(topic: string, payload: Buffer, decoded: DecodeOnce = () => decode(topic, payload)): void {
    const result = decoded();
    if (!result.ok) {
      // Only the kinds the engine reads count as invalid; anything else is not for it.
      if (result.reason === 'schema' && HANDLED_KINDS.has(result.topic.kind)) this.invalid(topic, result.error);
      return;
    }
    const message = result.message;
    switch (message.kind) {
      case 'ack':
        return this.center.onAck(message.line, message.device, message.payload);
      case 'state':
      case 'telemetry':
      case 'status':
        return this.ingest(message);
    }
  }

  /** One validated device message (the bus path ends here; the benchmark calls it directly). */
  ingest(event: DeviceEvent): void {
    const { kind, line, device, payload: msg } = event;
    this.c.received!++;
    const id = `${line}/${device}`;
    if (msg.seq !== undefined && this.sequences.check(id, msg.seq, msg.ts) === 'duplicate') {
      this.c.duplicates!++;
      return;
    }
    const rec = this.record(line, device);
    const now = this.clock.now();
    // Event time: a message older than the device's newest by more than the reorder tolerance, or
    // older than maxLateness, is late (e.g. store-and-forward backfill): it feeds windows only.
    // Status messages (births and wills, whose ts is the connect time) only set the status.
    const isStatus = kind === 'status';
    const newest = !isStatus && msg.ts >= rec.watermark;
    const late = (!isStatus && msg.ts < rec.watermark - this.settings.reorderToleranceMs) || msg.ts < now - this.settings.maxLatenessMs;
    if (late) this.c.late!++;
    else if (!newest && !isStatus) this.c.reordered!++;
    if (msg.type) rec.type = msg.type;
    if (event.kind === 'status') {
      rec.status = event.payload.status;
    } else if (newest) {
      // The device's latest known state and readings, even from a backfilled (late) message.
      rec.watermark = msg.ts;
      if (event.kind === 'state') {
        if (event.payload.state !== rec.state) {
          rec.enteredFrom = rec.state;
          rec.state = event.payload.state;
        }
        rec.reason = event.payload.reason;
      } else {
        Object.assign(rec.values, event.payload.values);
      }
    }
    if (!(event.kind === 'status' && event.payload.status === 'offline')) {
      rec.aliveAt = now;
      const absence = this.absenceByDevice.get(id);
      if (absence) for (const rule of absence) this.deviceBack(rule, id);
    }

    const entry = this.index.get(kind);
    if (!entry) return;
    const bucket = entry.lines.get(line);
    const exactLine = bucket?.exact.get(device) ?? EMPTY;
    const wildLine = bucket?.wild ?? EMPTY;
    const exactAny = entry.anyLine.exact.get(device) ?? EMPTY;
    const wildAny = entry.anyLine.wild;
    if (exactLine.length + wildLine.length + exactAny.length + wildAny.length === 0) return;

    const scope: Scope = {
      device,
      line,
      kind,
      ts: msg.ts,
      values: event.kind === 'telemetry' ? event.payload.values : rec.values,
      last: rec.values,
      state: event.kind === 'state' ? event.payload.state : rec.state,
      previous: rec.enteredFrom,
      reason: rec.reason,
      status: rec.status,
      type: rec.type,
      // Filled per rule (windows, line counts) just before that rule reads them; declared here so every scope has one shape.
      avg: undefined,
      min: undefined,
      max: undefined,
      count: undefined,
      rate: undefined,
      delta: undefined,
      matching: undefined,
    };
    const stamp = ++this.evalStamp;
    for (const list of [exactLine, exactAny]) for (const rule of list) this.consider(rule, rec, scope, msg.ts, late, stamp, true);
    for (const list of [wildLine, wildAny]) for (const rule of list) this.consider(rule, rec, scope, msg.ts, late, stamp, false);
  }

  private consider(rule: CompiledRule, rec: DeviceRecord, scope: Scope, ts: number, late: boolean, stamp: number, exact: boolean): void {
    if (this.stamps.get(rule) === stamp) return; // matched by two of its device patterns
    if (!exact && !rule.deviceMatchers.some((m) => m.test(rec.device))) return;
    if (!rule.lineMatcher.test(rec.line)) return;
    if (rule.type && rec.type !== rule.type) return;
    this.stamps.set(rule, stamp);
    this.evaluate(rule, rec, scope, ts, late);
  }

  private evaluate(rule: CompiledRule, rec: DeviceRecord, base: Scope, ts: number, late: boolean): void {
    this.c.evaluations!++;
    const inst = this.instance(rule, rule.keyBy === 'line' ? rec.line : rec.id, rec.line, rule.keyBy === 'line' ? undefined : rec.device);
    if (rule.window) {
      const v = rule.window.of(base);
      if (typeof v === 'number' && Number.isFinite(v)) addToWindow(inst, rule, ts, v);
      if (late) return; // late events update the window, but fire nothing for the past
      aggregateInto(inst, base); // the message's scope has the window fields; only this rule reads them
    }
    if (late) return;
    if (rule.lineCount) base.matching = this.countMatching(rule, rec.line);
    this.step(rule, inst, this.condition(rule, rec, base), base, ts);
  }

  private condition(rule: CompiledRule, rec: DeviceRecord, scope: Scope): boolean {
    if (rule.transition) {
      const { from, to } = rule.transition;
      if (!rec.state || !to.has(rec.state)) return false;
      if (from && (!rec.enteredFrom || !from.has(rec.enteredFrom))) return false;
    }
    if (rule.lineCount && (scope.matching as number) < rule.lineCount.atLeast) return false;
    return rule.when ? Boolean(rule.when(scope)) : true;
  }

  private step(rule: CompiledRule, inst: Instance, cond: boolean, scope: Scope, ts: number): void {
    const now = this.clock.now();
    switch (inst.phase) {
      case 'idle':
        if (!cond) return;
        if (rule.forMs === 0) return this.activate(rule, inst, scope);
        inst.phase = 'pending';
        inst.since = ts;
        inst.sinceClock = now;
        this.timed.add(inst);
        return;
      case 'pending':
        if (!cond) {
          inst.phase = 'idle';
          inst.since = inst.sinceClock = undefined;
          this.timed.delete(inst);
        } else if (ts - inst.since! >= rule.forMs) {
          this.activate(rule, inst, scope);
        }
        return;
      case 'active': {
        const clear = rule.clear ? Boolean(rule.clear(scope)) : !cond;
        if (!clear) {
          inst.clearSince = inst.clearSinceClock = undefined;
          this.timed.delete(inst);
        } else if (rule.clearForMs === 0) {
          this.deactivate(rule, inst, scope);
        } else if (inst.clearSince === undefined) {
          inst.clearSince = ts;
          inst.clearSinceClock = now;
          this.timed.add(inst);
        } else if (ts - inst.clearSince >= rule.clearForMs) {
          this.deactivate(rule, inst, scope);
        }
        return;
      }
    }
  }

  private activate(rule: CompiledRule, inst: Instance, scope: Scope): void {
    const now = this.clock.now();
    inst.phase = 'active';
    inst.activatedAt = now;
    inst.since = inst.sinceClock = inst.clearSince = inst.clearSinceClock = undefined;
    this.timed.delete(inst);
    this.c.activations!++;
    log.info({ rule: rule.id, key: inst.key }, 'rule fired');
    for (const action of rule.actions) {
      if (action.kind === 'command') this.runCommand(rule, inst, action, scope);
      else {
        const alert: AlertPayload = {
          id: alertId(rule.id, inst.key),
          rule: rule.id,
          severity: action.severity,
          state: 'raised',
          message: action.message(scope).slice(0, 1024),
          ...(inst.device ? { device: inst.device } : {}),
          ts: now,
        };
        inst.alert = alert;
        this.publishAlert(inst.line, alert);
      }
    }
  }

  private deactivate(rule: CompiledRule, inst: Instance, scope: Scope, runOnClear = true): void {
    inst.phase = 'idle';
    inst.since = inst.sinceClock = inst.clearSince = inst.clearSinceClock = undefined;
    this.timed.delete(inst);
    this.c.deactivations!++;
    if (inst.alert) {
      this.publishAlert(inst.line, { ...inst.alert, state: 'cleared', ts: this.clock.now() });
      inst.alert = undefined;
    }
    if (runOnClear) for (const action of rule.onClear) this.runCommand(rule, inst, action, scope);
    this.center.release(`${rule.id}|${inst.key}`);
  }

  private runCommand(rule: CompiledRule, inst: Instance, action: CompiledCommand, scope: Scope): void {
    const target = action.target(scope);
    if (!isValidId(target)) {
      this.c.bad_targets!++;
      log.error({ rule: rule.id, target }, `rule ${rule.id}: command target "${target}" is not a device id; fix the rule's target`);
      return;
    }
    const targetRec = this.devices.get(`${inst.line}/${target}`);
    const params = action.params({ ...scope, target: targetRec?.values ?? {} });
    this.center.issue({
      ruleId: rule.id,
      priority: rule.priority,
      holder: `${rule.id}|${inst.key}`,
      line: inst.line,
      target,
      action: action.action,
      params,
      ttlMs: action.ttlMs,
      // The base for maxStep before anything was commanded: the target's reported setpoint, else its speed.
      current: targetRec?.values.speedSetpoint ?? targetRec?.values.setpoint ?? targetRec?.values.speed,
    });
  }

  private publishAlert(line: string, alert: AlertPayload): void {
    this.c[alert.state === 'raised' ? 'alerts_raised' : 'alerts_cleared']!++;
    this.options.onEvent?.({ type: 'alert', line, alert });
    this.bus.publish(topics.alerts(line), JSON.stringify(alert), DELIVERY.alert).catch((err: unknown) => {
      this.count('publish_errors');
      log.warn({ err: (err as Error).message, alert: alert.id }, 'could not publish an alert');
    });
  }

  private onSuspend(s: { ruleId: string; line: string; target: string; key: string; until: number; reason: string }): void {
    this.options.onEvent?.({ type: 'suspended', line: s.line, ruleId: s.ruleId, target: s.target, until: s.until, reason: s.reason });
    this.publishAlert(s.line, {
      id: `oscillation:${s.ruleId}`,
      rule: s.ruleId,
      severity: 'critical',
      state: 'raised',
      message: `rule ${s.ruleId} suspended until ${new Date(s.until).toISOString()}: ${s.reason}`.slice(0, 1024),
      device: s.target,
      ts: this.clock.now(),
    });
  }

  /** How many of the line's devices that the rule matches satisfy `lineCount.where`. */
  private countMatching(rule: CompiledRule, line: string): number {
    let n = 0;
    for (const d of this.lineDevices.get(line) ?? []) {
      if (!rule.deviceMatchers.some((m) => m.test(d.device)) || (rule.type && d.type !== rule.type)) continue;
      if (rule.lineCount!.where(this.deviceScope(d))) n++;
    }
    return n;
  }

  private deviceScope(d: DeviceRecord): Scope {
    return { device: d.device, line: d.line, ts: d.watermark, values: d.values, last: d.values, state: d.state, previous: d.enteredFrom, reason: d.reason, status: d.status, type: d.type };
  }

  /** The scope to act in when a timer (not a message) fires. */
  private timerScope(rule: CompiledRule, inst: Instance): Scope {
    const rec = inst.device ? this.devices.get(`${inst.line}/${inst.device}`) : undefined;
    let scope: Scope = rec ? this.deviceScope(rec) : { line: inst.line, device: inst.device, values: {}, last: {} };
    if (rule.window) aggregateInto(inst, scope);
    if (rule.lineCount) scope.matching = this.countMatching(rule, inst.line);
    if (rule.absent) scope = { ...scope, device: inst.device };
    return scope;
  }

  private deviceBack(rule: CompiledRule, id: string): void {
    const inst = this.instances.get(rule.id)?.get(id);
    if (inst?.phase === 'active') this.deactivate(rule, inst, this.timerScope(rule, inst));
  }

  private tick(): void {
    const now = this.clock.now();
    for (const inst of [...this.timed]) {
      const rule = this.rulesById.get(inst.ruleId);
      if (!rule) {
        this.timed.delete(inst);
        continue;
      }
      if (inst.phase === 'pending' && now - inst.sinceClock! >= rule.forMs) this.activate(rule, inst, this.timerScope(rule, inst));
      else if (inst.phase === 'active' && inst.clearSinceClock !== undefined && now - inst.clearSinceClock >= rule.clearForMs) this.deactivate(rule, inst, this.timerScope(rule, inst));
    }
    for (const rule of this.absenceRules) {
      const line = rule.lineMatcher.exact!;
      const { afterMs, graceMs } = rule.absent!;
      for (const device of rule.absent!.devices) {
        const key = `${line}/${device}`;
        const inst = this.instance(rule, key, line, device);
        if (inst.phase === 'active') continue;
        const aliveAt = this.devices.get(key)?.aliveAt;
        const deadline = Math.max(this.startedAt + graceMs, (aliveAt ?? this.startedAt) + afterMs);
        if (now >= deadline) {
          const scope = { ...this.timerScope(rule, inst), silentFor: Math.round((now - (aliveAt ?? this.startedAt)) / 1000), neverSeen: aliveAt === undefined };
          this.activate(rule, inst, scope);
        }
      }
    }
    this.center.tick();
    if (this.dirMissing && now - this.dirCheckedAt >= 2000) {
      this.dirCheckedAt = now;
      if (existsSync(this.options.dir)) {
        this.dirMissing = false;
        log.info({ dir: this.options.dir }, 'the rules folder appeared; loading it');
        this.reload();
        if (this.options.watch !== false) this.watchDir();
      }
    }
    if (this.options.stateFile && now - this.lastSnapshotAt >= this.settings.snapshotEveryMs) {
      this.lastSnapshotAt = now;
      this.saveSnapshot();
    }
  }

  private scheduleTick(): void {
    this.cancelTick = this.clock.after(this.settings.tickMs, () => {
      if (!this.running) return;
      try {
        this.tick();
      } finally {
        this.scheduleTick();
      }
    });
  }

  /** Installs a rule set: rebuilds the index; instances of removed or changed rules are dropped (their alerts cleared). */
  private apply(set: RuleSet): void {
    const next = new Map(set.rules.map((r) => [r.id, r]));
    for (const [id, insts] of this.instances) {
      const old = this.rulesById.get(id);
      const now = next.get(id);
      if (old && now && old.hash === now.hash) continue;
      for (const inst of insts.values()) {
        if (inst.phase === 'active' && old) this.deactivate(old, inst, this.timerScope(old, inst), false);
        this.timed.delete(inst);
      }
      this.instances.delete(id);
    }
    this.ruleSet = set;
    this.rulesById = next;
    this.center.setSafety(set.safety);
    this.index = new Map();
    this.absenceByDevice = new Map();
    this.absenceRules = [];
    for (const rule of set.rules) {
      if (rule.absent) {
        this.absenceRules.push(rule);
        for (const d of rule.absent.devices) {
          const id = `${rule.lineMatcher.exact}/${d}`;
          this.absenceByDevice.set(id, [...(this.absenceByDevice.get(id) ?? []), rule]);
        }
        continue;
      }
      let entry = this.index.get(rule.kind);
      if (!entry) {
        entry = { lines: new Map(), anyLine: { exact: new Map(), wild: [] } };
        this.index.set(rule.kind, entry);
      }
      let bucket = entry.anyLine;
      if (rule.lineMatcher.exact) {
        bucket = entry.lines.get(rule.lineMatcher.exact) ?? { exact: new Map(), wild: [] };
        entry.lines.set(rule.lineMatcher.exact, bucket);
      }
      for (const m of rule.deviceMatchers) {
        if (m.exact) bucket.exact.set(m.exact, [...(bucket.exact.get(m.exact) ?? []), rule]);
        else if (!bucket.wild.includes(rule)) bucket.wild.push(rule);
      }
    }
  }

  private watchDir(): void {
    try {
      this.watcher = watch(this.options.dir, () => {
        clearTimeout(this.reloadTimer);
        this.reloadTimer = setTimeout(() => {
          if (this.running) this.reload();
        }, this.settings.reloadDebounceMs);
      });
      this.watcher.on('error', (err) => log.warn({ err: err.message }, 'stopped watching the rules folder; restart to pick up changes'));
    } catch (err) {
      log.warn({ err: (err as Error).message, dir: this.options.dir }, 'cannot watch the rules folder; changes need a restart');
    }
  }

  private record(line: string, device: string): DeviceRecord {
    const id = `${line}/${device}`;
    let rec = this.devices.get(id);
    if (!rec) {
      rec = { id, line, device, values: {}, watermark: 0 };
      this.devices.set(id, rec);
      const list = this.lineDevices.get(line) ?? [];
      list.push(rec);
      this.lineDevices.set(line, list);
    }
    return rec;
  }

  private instance(rule: CompiledRule, key: string, line: string, device: string | undefined): Instance {
    let m = this.instances.get(rule.id);
    if (!m) {
      m = new Map();
      this.instances.set(rule.id, m);
    }
    let inst = m.get(key);
    if (!inst) {
      inst = { ruleId: rule.id, key, line, device, phase: 'idle' };
      m.set(key, inst);
    }
    return inst;
  }

  private invalid(topic: string, error: string): void {
    this.c.invalid!++;
    log.debug({ topic, error }, 'ignored an invalid message');
  }

  private count(name: string): void {
    this.c[name] = (this.c[name] ?? 0) + 1;
  }

  private saveSnapshot(): void {
    const file = this.options.stateFile;
    if (!file) return;
    const instances: Snapshot['instances'] = [];
    for (const [ruleId, m] of this.instances) {
      const hash = this.rulesById.get(ruleId)?.hash;
      if (!hash) continue;
      for (const inst of m.values()) if (inst.phase !== 'idle' || inst.window) instances.push({ ...inst, hash });
    }
    const snapshot: Snapshot = { version: 1, savedAt: this.clock.now(), devices: [...this.devices.values()], instances, commands: this.center.snapshot() };
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(`${file}.tmp`, JSON.stringify(snapshot));
      renameSync(`${file}.tmp`, file);
    } catch (err) {
      this.count('snapshot_errors');
      log.error({ err: (err as Error).message, file }, 'cannot write the rules state file; state will not survive a restart');
    }
  }

  private restore(): void {
    const file = this.options.stateFile;
    if (!file) return;
    let snapshot: Snapshot;
    try {
      snapshot = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        log.warn({ err: (err as Error).message, file }, 'the rules state file is unreadable; starting with empty state');
      }
      return;
    }
    if (snapshot.version !== 1) return;
    for (const d of snapshot.devices) {
      const rec = this.record(d.line, d.device);
      Object.assign(rec, d);
    }
    let restored = 0;
    for (const { hash, ...inst } of snapshot.instances) {
      const rule = this.rulesById.get(inst.ruleId);
      if (!rule || rule.hash !== hash) continue; // the rule changed: its old state no longer means the same
      const target = this.instance(rule, inst.key, inst.line, inst.device);
      Object.assign(target, inst);
      if (target.phase === 'pending' || target.clearSince !== undefined) this.timed.add(target);
      restored++;
    }
    this.center.restore(snapshot.commands);
    this.c.restored_instances = restored;
    log.info({ file, instances: restored, devices: snapshot.devices.length }, 'rules state restored');
  }
}

/** `rule:line/device`, within the alert schema's 128 characters (long ids get a hash of the key). */
function alertId(ruleId: string, key: string): string {
  const id = `${ruleId}:${key}`;
  return id.length <= 128 ? id : `${ruleId}:${createHash('sha1').update(key).digest('hex').slice(0, 16)}`;
}

function addToWindow(inst: Instance, rule: CompiledRule, ts: number, v: number): void {
  const w = (inst.window ??= { ts: [], v: [] });
  // Keep time order; a late event is inserted where it belongs.
  let i = w.ts.length;
  while (i > 0 && w.ts[i - 1]! > ts) i--;
  w.ts.splice(i, 0, ts);
  w.v.splice(i, 0, v);
  const { timeMs, count } = rule.window!;
  if (count !== undefined && w.ts.length > count) {
    w.ts.splice(0, w.ts.length - count);
    w.v.splice(0, w.v.length - count);
  }
  if (timeMs !== undefined) {
    const newest = w.ts[w.ts.length - 1]!;
    let drop = 0;
    while (drop < w.ts.length && w.ts[drop]! < newest - timeMs) drop++;
    if (drop > 0) {
      w.ts.splice(0, drop);
      w.v.splice(0, drop);
    }
  }
}

/** Writes avg, min, max, count, delta and rate of the instance's window into `scope`. */
function aggregateInto(inst: Instance, scope: Scope): void {
  const w = inst.window;
  if (!w || w.v.length === 0) {
    scope.avg = scope.min = scope.max = scope.rate = scope.delta = undefined;
    scope.count = 0;
    return;
  }
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of w.v) {
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const n = w.v.length;
  const delta = w.v[n - 1]! - w.v[0]!;
  const span = (w.ts[n - 1]! - w.ts[0]!) / 1000;
  scope.avg = sum / n;
  scope.min = min;
  scope.max = max;
  scope.count = n;
  scope.delta = delta;
  scope.rate = span > 0 ? delta / span : 0;
}
