// The rules engine: device events in, alerts and acknowledged commands out (docs/rules.md).
//
// It routes each decoded message through its parts: the device table (latest state and values,
// watermark) → the rule index (the rules for its kind, line and device) → per rule instance (one
// per device, or per line for lineCount) the state machine idle → pending (`for`) → active →
// (clear, `clearFor`) → idle. Entering active runs the actions; leaving it clears the alert and
// runs onClear (rule-actions.ts). Commands go through the safety policy and the command loop.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Bus, DecodeOnce, Unsubscribe } from '../bus/bus.js';
import { decode } from '../contracts/decode.js';
import { ALL_LINES, describeOwnership, ownedFilters, ownsLine, type LineOwnership } from '../contracts/line-workers.js';
import { EventClock } from '../contracts/event-clock.js';
import { topics, type MessageKind } from '../contracts/topics.js';
import { lockDir, unlockDir } from '../lib/dir-lock.js';
import { logger } from '../lib/log.js';
import { healthFrom, worstHealth, type Counters, type Health, type Service, type ServiceInfo } from '../lib/service.js';
import { AlarmDesk } from './alarm-desk.js';
import type { LineAlarm } from './alarms.js';
import { systemClock, type Clock } from './clock.js';
import { CommandCenter } from './commands.js';
import { rulesSettingsSchema, type RulesSettings, type RulesSettingsInput } from './config.js';
import { DeadLetters } from './dead-letters.js';
import { DeviceTable, type DeviceEvent } from './device-table.js';
import { RuleFolderWatcher } from './folder-watcher.js';
import { InstanceTable } from './instance-state.js';
import { formatLoadError, loadRuleDir, type ParsedFile, type RuleSet } from './load.js';
import { safetySchema } from './schema.js';
import { RuleActions, type EngineEvent } from './rule-actions.js';
import { RuleRouter, type RouterCounts } from './router.js';
import { ShadowBus } from './shadow-bus.js';
import { readSnapshot, restoreSnapshot, takeSnapshot, writeSnapshot, type SnapshotParts } from './snapshots.js';

export type { DeviceKind, DeviceEvent } from './device-table.js';
export type { AlertEvent, SuspendEvent, EngineEvent } from './rule-actions.js';

const log = logger('rules');

/** The kinds handle() takes: the device events, command acks, alarm states (read back) and operators' alarm requests. */
const HANDLED_KINDS: ReadonlySet<MessageKind> = new Set<MessageKind>(['state', 'telemetry', 'status', 'ack', 'alarm', 'alarmSet']);
/** What the engine subscribes to: the device events, its alarms' retained states, operators' requests about them. */
const SUBSCRIPTIONS = [...topics.allDeviceEvents, topics.allAlarms, topics.allAlarmRequests];
/** The keys of counters() that are levels, not totals. */
const GAUGES: ReadonlySet<string> = new Set(['rules', 'active_instances', 'pending_commands', 'intents', 'suspended_rules', 'load_errors', 'connected', 'restored_instances', 'restored_alarms', 'alarms']);
/** A shadow rule set's counters and gauges are the engine's, each key with this prefix (docs/rules.md#shadow). */
export const SHADOW_PREFIX = 'shadow_';

/** The shadow set's state file beside the live one's: `rules-state.json` → `rules-state.shadow.json`. */
export function shadowStateFile(stateFile: string): string {
  return stateFile.endsWith('.json') ? `${stateFile.slice(0, -'.json'.length)}.shadow.json` : `${stateFile}.shadow`;
}

export interface RulesEngineOptions {
  bus: Bus;
  /** Folder of rule YAML files; watched and reloaded on change. */
  dir: string;
  /** Where windows, timers, alerts and setpoints are kept across restarts; none if undefined. */
  stateFile?: string;
  /** Time source; ManualClock in tests and `rules test`. */
  clock?: Clock;
  /** Tuning (ack timeout, retries, lateness…); defaults in rules/config.ts. */
  settings?: RulesSettingsInput;
  /** Reload when files in `dir` change (default true). */
  watch?: boolean;
  /** Every command, outcome, alert and suspension, in order (e.g. for `rules test`'s timeline). */
  onEvent?: (event: EngineEvent) => void;
  /**
   * The lines this engine acts on (rules.lines / rules.worker, contracts/line-workers.ts); default
   * every line. It subscribes to a list's lines only; a hashed worker hears every line and skips
   * the others' (`skipped_other_worker`). A rule on a line it does not own does nothing here.
   */
  lines?: LineOwnership;
  /**
   * A shadow rule set to run beside this one on the same events (docs/rules.md#shadow): its
   * folder. Its commands, outcomes, alerts and alarms go only under lw/_shadow/ (ShadowBus).
   */
  shadowDir?: string | null;
  /** The shadow set's events, as onEvent's. */
  onShadowEvent?: (event: EngineEvent) => void;
  /** This engine is a shadow set (the live engine makes it so for its shadowDir; its bus is a ShadowBus). */
  shadow?: boolean;
}

// Before the first load: the safety section's defaults (rules/schema.ts), stated there once.
const NO_RULES: RuleSet = { rules: [], safety: safetySchema.parse({}), flows: new Map(), errors: [] };

export class RulesEngine implements Service {
  readonly name = 'rules';
  readonly gauges: ReadonlySet<string>;
  /** The shadow rule set beside this one (shadowDir), if any. */
  private readonly shadow: RulesEngine | undefined;
  private readonly bus: Bus;
  private readonly clock: Clock;
  private readonly settings: RulesSettings;
  private readonly commands: CommandCenter;
  private readonly actions: RuleActions;
  private readonly alarmDesk: AlarmDesk;
  private readonly folder: RuleFolderWatcher;
  private readonly counts: RouterCounts & Record<string, number> = {
    received: 0,
    invalid: 0,
    duplicates: 0,
    future_ts: 0,
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
    targets_none: 0,
    alarm_transitions: 0,
    alarm_requests: 0,
    alarm_requests_refused: 0,
    restored_alarms: 0,
    /** Messages of lines another worker owns (rules.worker: every worker hears every line). */
    skipped_other_worker: 0,
  };
  /** The lines it acts on, and what it subscribes to for them. */
  private readonly ownership: LineOwnership;
  private readonly subscriptions: string[];
  /** The state file's lock (`<stateFile>.lock`), while running. */
  private stateLock?: { dir: string; name: string };
  private ruleSet: RuleSet = NO_RULES;
  private readonly lastGood = new Map<string, ParsedFile>();
  private readonly devices: DeviceTable;
  /** Each line's event time (docs/rules.md#which-time): what alerts, alarms, commands and outcomes are stamped in. */
  private readonly eventClock = new EventClock();
  private readonly instances = new InstanceTable();
  private readonly router: RuleRouter;
  private lastSnapshotAt = 0;
  private cancelTick?: () => void;
  private unsubscribe?: Unsubscribe;
  private running = false;
  /** Why the last start failed, until a start succeeds. */
  private startError?: string;

  constructor(private readonly options: RulesEngineOptions) {
    this.bus = options.bus;
    this.ownership = options.lines ?? ALL_LINES;
    this.subscriptions = ownedFilters(this.ownership, SUBSCRIPTIONS);
    this.clock = options.clock ?? systemClock;
    this.settings = rulesSettingsSchema.parse(options.settings ?? {});
    this.devices = new DeviceTable(this.settings);
    const lineNow = (line: string): number => this.eventClock.now(line, this.clock.now());
    this.commands = new CommandCenter({
      bus: this.bus,
      clock: this.clock,
      lineNow,
      // Unique per start; on the system clock a random part keeps two engines started in the same ms apart
      // (a ManualClock keeps ids reproducible for `rules test`).
      // A shadow set's ids start with `s`, so none is ever a live command's.
      idPrefix: `${options.shadow ? 's' : 'c'}${this.clock.now().toString(36)}${this.clock === systemClock ? randomBytes(3).toString('hex') : ''}`,
      settings: this.settings,
      safety: this.ruleSet.safety,
      onEvent: (event) => this.options.onEvent?.(event),
      onSuspend: (suspension) => this.actions.suspended(suspension),
      count: (name) => this.count(name),
      shadow: options.shadow === true,
    });
    this.alarmDesk = new AlarmDesk({ bus: this.bus, clock: this.clock, lineNow, count: (name) => this.count(name) });
    this.actions = new RuleActions({ bus: this.bus, clock: this.clock, lineNow, commands: this.commands, devices: this.devices, alarms: this.alarmDesk, count: (name) => this.count(name), onEvent: options.onEvent });
    this.router = new RuleRouter({ clock: this.clock, devices: this.devices, instances: this.instances, actions: this.actions, counts: this.counts, deadLetters: new DeadLetters(this.bus, this.clock, (name) => this.count(name)), ownsLine: (line) => ownsLine(this.ownership, line), heard: (line, ts) => this.eventClock.observe(line, ts, this.clock.now()) });
    this.folder = new RuleFolderWatcher({
      dir: options.dir,
      debounceMs: this.settings.reloadDebounceMs,
      watch: options.watch !== false,
      onChange: () => {
        if (this.running) this.reload();
      },
    });
    this.shadow = options.shadowDir && !options.shadow ? new RulesEngine({
      bus: new ShadowBus(options.bus),
      dir: options.shadowDir,
      stateFile: options.stateFile === undefined ? undefined : shadowStateFile(options.stateFile),
      clock: options.clock,
      settings: options.settings,
      watch: options.watch,
      onEvent: options.onShadowEvent,
      lines: options.lines,
      shadow: true,
    }) : undefined;
    this.gauges = this.shadow ? new Set([...GAUGES, ...[...GAUGES].map((key) => SHADOW_PREFIX + key)]) : GAUGES;
  }

  /** Loads the rules (throws listing every error if a file is broken), restores state, subscribes. */
  async start(): Promise<void> {
    if (this.running) return;
    try {
      const exists = this.folder.checkExists();
      const set = exists ? loadRuleDir(this.options.dir, this.lastGood) : { ...this.ruleSet, rules: [] };
      if (set.errors.length > 0) {
        throw new Error(`rules: ${set.errors.length} error(s) in ${this.options.dir}:\n  ${set.errors.map(formatLoadError).join('\n  ')}\nFix them (check with: linewatch rules check ${this.options.dir}).`);
      }
      this.apply(set);
      this.lockStateFile();
      this.lastSnapshotAt = this.clock.now();
      this.router.started(this.lastSnapshotAt);
      this.restore();
      this.running = true;
      this.unsubscribe = await this.bus.subscribe(this.subscriptions, (topic, payload, decoded) => this.handle(topic, payload, decoded), { qos: 1 });
    } catch (err) {
      this.running = false;
      this.unlockStateFile();
      this.startError = (err as Error).message.split('\n', 1)[0];
      throw err;
    }
    this.startError = undefined;
    this.folder.watchChanges();
    this.scheduleTick();
    log.info({ dir: this.options.dir, rules: this.ruleSet.rules.length, lines: describeOwnership(this.ownership), subscribed: this.subscriptions, ...(this.options.shadow ? { shadow: true } : {}) }, this.options.shadow ? 'shadow rules engine started' : 'rules engine started');
    await this.startShadow();
  }

  /** The shadow set starts after the live one; a shadow set that cannot start (broken files) stops both, as a broken live set would. */
  private async startShadow(): Promise<void> {
    if (!this.shadow) return;
    try {
      await this.shadow.start();
    } catch (err) {
      await this.stop();
      this.startError = `shadow ${(err as Error).message.split('\n', 1)[0]}`;
      throw new Error(`shadow ${(err as Error).message}`, { cause: err });
    }
  }

  async stop(): Promise<void> {
    await this.shadow?.stop();
    if (!this.running) return;
    this.running = false;
    this.cancelTick?.();
    this.folder.close();
    await this.unsubscribe?.();
    this.saveSnapshot();
    this.unlockStateFile();
  }

  /** The lines it acts on (`all`, `A,B`, `hash 1/2`) and its subscription, for /healthz and /metrics. */
  info(): ServiceInfo {
    const owned = this.ownership.kind === 'all' ? 'all' : this.ownership.kind === 'lines' ? this.ownership.lines.join(',') : `hash ${this.ownership.index}/${this.ownership.count}`;
    return { lines: owned, subscription: this.subscriptions.join(' ') };
  }

  /** One engine per state file: a second (another worker given the same file) is refused, naming the holder. */
  private lockStateFile(): void {
    const file = this.options.stateFile;
    if (!file || this.stateLock) return;
    const lock = { dir: dirname(file), name: `${basename(file)}.lock` };
    mkdirSync(lock.dir, { recursive: true });
    lockDir(lock.dir, `the rules state file ${basename(file)} in`, `give each rules engine (each worker: --lines, --worker) its own state file (rules.stateFile, --state-file); ${file} is the other engine's`, { name: lock.name });
    this.stateLock = lock;
  }

  private unlockStateFile(): void {
    if (!this.stateLock) return;
    unlockDir(this.stateLock.dir, this.stateLock.name);
    this.stateLock = undefined;
  }

  /**
   * down: not running — it could not start (broken rule files, the bus refused the subscription)
   * or was stopped — or its bus is not connected to the broker (no events in, no commands out).
   * degraded: the last (re)load left errors (each broken rule keeps its last good version), the rules
   * folder is missing (no rules run until it appears), or the oscillation guard has suspended a
   * rule (its commands are blocked).
   */
  health(): Health {
    const suspended = Object.keys(this.commands.suspendedRules());
    const loadErrors = this.ruleSet.errors.length;
    const running = this.running;
    const own = healthFrom([
      { failed: !running, status: 'down', reason: this.startError ? `the rules engine could not start: ${this.startError}` : 'the rules engine is not running' },
      { failed: running && !this.isConnected(), status: 'down', reason: 'the rules engine is not connected to the broker: no device events in, no commands out (it reconnects by itself)' },
      { failed: running && loadErrors > 0, status: 'degraded', reason: `${loadErrors} error(s) in the rule files of ${this.options.dir}; each broken rule keeps its last good version, the others run as written (check with: linewatch rules check ${this.options.dir})` },
      { failed: running && this.folder.folderMissing, status: 'degraded', reason: `the rules folder ${this.options.dir} does not exist; no rules run until it does` },
      { failed: running && suspended.length > 0, status: 'degraded', reason: `rule(s) ${suspended.join(', ')} suspended by the oscillation guard; their commands are blocked` },
    ]);
    return this.shadow ? worstHealth([own, this.shadowHealth()]) : own;
  }

  /** The shadow set's health, each reason naming it; it never makes the service down (the live rules run on). */
  private shadowHealth(): Health {
    const shadow = this.shadow!;
    if (!this.running) return { status: 'ok', reasons: [] };
    const health = shadow.health();
    if (health.status === 'ok') return health;
    return { status: 'degraded', reasons: health.reasons.map((reason) => `shadow rule set ${shadow.options.dir} (its commands go to no device): ${reason}`) };
  }

  private isConnected(): boolean {
    return this.options.bus.connected();
  }

  counters(): Counters {
    return {
      ...this.counts,
      rules: this.ruleSet.rules.length,
      active_instances: this.instances.active().length,
      pending_commands: this.commands.pendingCount(),
      intents: this.commands.intentCount(),
      suspended_rules: Object.keys(this.commands.suspendedRules()).length,
      load_errors: this.ruleSet.errors.length,
      connected: this.isConnected() ? 1 : 0,
      alarms: this.alarmDesk.activeCount,
      ...(this.shadow ? Object.fromEntries(Object.entries(this.shadow.counters()).map(([key, value]) => [SHADOW_PREFIX + key, value])) : {}),
    };
  }

  /** The shadow set's rules and load errors, when one runs beside this one. */
  shadowRules(): RuleSet | undefined {
    return this.shadow?.rules();
  }

  /** The shadow set's folder, when one runs beside this one. */
  get shadowDir(): string | undefined {
    return this.shadow?.options.dir;
  }

  /** The shadow set's alarms (its own table; never on the live alarm topics). */
  shadowAlarms(): LineAlarm[] {
    return this.shadow?.alarms() ?? [];
  }

  /** The currently loaded rules and the errors of the last (re)load. */
  rules(): RuleSet {
    return this.ruleSet;
  }

  /** Active instances (rule id, key, since) — for status displays and tests. */
  activeInstances(): { ruleId: string; key: string; activatedAt: number }[] {
    return this.instances.active().map((instance) => ({ ruleId: instance.ruleId, key: instance.key, activatedAt: instance.activatedAt ?? 0 }));
  }

  /** Every alarm that is not normal, with its line (shelved ones too): the engine's alarm table. */
  alarms(): LineAlarm[] {
    return this.alarmDesk.all();
  }

  /** Reloads the rule files now (and the shadow set's, its errors prefixed `shadow: `); a broken file keeps its last good rules. Returns the errors. */
  reload(): string[] {
    return [...this.reloadOwn(), ...(this.shadow?.reloadOwn().map((error) => `shadow: ${error}`) ?? [])];
  }

  private reloadOwn(): string[] {
    const set = loadRuleDir(this.options.dir, this.lastGood);
    this.count('reloads');
    const errors = set.errors.map(formatLoadError);
    if (errors.length > 0) {
      this.count('reload_errors');
      for (const error of errors) log.error(`rule reload: ${error} — that rule keeps its last good version (an unreadable file: all its last good rules)`);
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
    if (this.ownership.kind !== 'all' && !ownsLine(this.ownership, message.line)) {
      this.count('skipped_other_worker');
      return;
    }
    switch (message.kind) {
      case 'ack':
        return this.commands.onAck(message.line, message.device, message.payload);
      case 'state':
      case 'telemetry':
      case 'status':
        return this.ingest(message);
      case 'alarm':
        return this.alarmDesk.readBack(message.line, message.payload);
      case 'alarmSet':
        return this.alarmDesk.request(message.line, message.alarm, message.payload);
    }
  }

  /** One validated device message (the bus path ends here; the benchmark calls it directly). */
  ingest(event: DeviceEvent): void {
    this.router.ingest(event);
    this.commands.reported(event);
  }

  private tick(): void {
    const now = this.clock.now();
    this.router.tick(now);
    this.commands.tick();
    this.alarmDesk.tick(now);
    this.folder.checkMissing(now);
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

  /** Installs a rule set: the router's index and the safety limits. */
  private apply(set: RuleSet): void {
    this.router.install(set.rules, set.flows);
    this.ruleSet = set;
    this.commands.setSafety(set.safety);
    // A rule removed takes its intents with it (a changed one's active intents were released by install).
    this.commands.retainIntents((intent) => this.router.rulesById.has(intent.request.ruleId));
  }

  private invalid(topic: string, error: string): void {
    this.count('invalid');
    log.debug({ topic, error }, 'ignored an invalid message');
  }

  private count(name: string): void {
    this.counts[name] = (this.counts[name] ?? 0) + 1;
  }

  private saveSnapshot(): void {
    if (this.options.stateFile && !writeSnapshot(this.options.stateFile, takeSnapshot(this.snapshotParts(), this.clock.now()))) this.count('snapshot_errors');
  }

  private restore(): void {
    const file = this.options.stateFile;
    const snapshot = file ? readSnapshot(file) : undefined;
    if (!snapshot) return;
    const restored = restoreSnapshot(this.snapshotParts(), snapshot);
    this.counts.restored_instances = restored.instances;
    this.counts.restored_alarms = restored.alarms;
    log.info({ file, instances: restored.instances, alarms: restored.alarms, devices: snapshot.devices.length }, 'rules state restored');
  }

  private snapshotParts(): SnapshotParts {
    return { devices: this.devices, instances: this.instances, rulesById: this.router.rulesById, commands: this.commands, alarms: this.alarmDesk };
  }
}
