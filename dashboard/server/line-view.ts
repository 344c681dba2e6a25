// The live picture of every line, built from what crosses the bus: device states and readings,
// who is online, the line summary (speed, strategy, OEE), recent commands with their acks,
// the alarms (from the rules engine's retained alarm states, the one source of truth: a
// restarted dashboard has them at once) and their recent transitions. It records which parts
// changed so the SSE hub can send only deltas.
import type { DecodeOnce } from '../../bus/bus.js';
import {
  alarmTopicId,
  decode,
  type AckResult,
  type AlarmPayload,
  type CommandOutcome,
  type CommandPayload,
  type DeviceState,
  type DeviceType,
  type SummaryPayload,
} from '../../contracts/index.js';

export interface DeviceView {
  key: string; // LINE/DEVICE
  line: string;
  device: string;
  type: DeviceType | null;
  station: string | null;
  state: DeviceState | null;
  reason: string | null;
  stateSince: number | null;
  online: boolean | null;
  values: Record<string, number>;
  lastSeen: number;
}

export interface LineSummaryView extends SummaryPayload {
  line: string;
}

export interface CommandView {
  id: string;
  line: string;
  device: string;
  action: CommandPayload['action'];
  params: CommandPayload['params'];
  origin: string;
  ts: number;
  expiresAt: number;
  /** The latest ack result, or null while none has come. */
  ack: AckResult | null;
  ackReason: string | null;
  ackTs: number | null;
  /** What its sender (e.g. the rules engine) decided became of it, from cmd/outcome. */
  outcome: CommandOutcome | null;
  outcomeReason: string | null;
}

/** One alarm as the rules engine last published it (lw/{line}/alarms/{alarmId}), with its line. */
export interface AlertView extends AlarmPayload {
  line: string;
}

/** One transition of an alarm (each state the engine published), newest first in the view. */
export type AlarmTransitionView = AlertView;

export interface LineSnapshot {
  devices: DeviceView[];
  lines: LineSummaryView[];
  commands: CommandView[];
  /** Alarms that are not normal, shelved ones too (`shelvedUntil`). */
  alerts: AlertView[];
  /** Recent alarm transitions, newest first. */
  transitions: AlarmTransitionView[];
}

export interface LineDelta {
  devices: DeviceView[];
  lines: LineSummaryView[];
  commands: CommandView[];
  alerts: AlertView[];
  /** Alarms gone (normal), as LINE/ID. */
  alertsRemoved: string[];
  /** Transitions since the last delta, newest first. */
  transitions: AlarmTransitionView[];
}

export interface LineViewCounters {
  messages: number;
  invalid: number;
  /** Messages about a new device or alert ignored because the view holds its maximum already. */
  over_capacity: number;
  /** Commands seen, and those a device acknowledged (accepted or done). */
  commands: number;
  commands_acked: number;
}

export interface LineViewLimits {
  /** Recent commands kept. */
  maxCommands: number;
  /** Devices tracked (a gateway account may speak for any device name). */
  maxDevices: number;
  /** Alarms tracked. */
  maxAlerts: number;
  /** Recent alarm transitions kept. */
  maxTransitions: number;
}

export class LineView {
  readonly counters: LineViewCounters = { messages: 0, invalid: 0, over_capacity: 0, commands: 0, commands_acked: 0 };
  private readonly limits: LineViewLimits;
  private readonly devices = new Map<string, DeviceView>();
  private readonly lines = new Map<string, LineSummaryView>();
  private readonly commands = new Map<string, CommandView>();
  private readonly alerts = new Map<string, AlertView>();
  private readonly dirtyDevices = new Set<string>();
  private readonly dirtyLines = new Set<string>();
  private readonly dirtyCommands = new Set<string>();
  private readonly dirtyAlerts = new Set<string>();
  private readonly removedAlerts = new Set<string>();
  /** Newest last; `newTransitions` of them are not in a delta yet. */
  private readonly transitions: AlarmTransitionView[] = [];
  private newTransitions = 0;

  constructor(limits: Partial<LineViewLimits> = {}) {
    this.limits = { maxCommands: 50, maxDevices: 10_000, maxAlerts: 1000, maxTransitions: 50, ...limits };
  }

  /**
   * Takes one bus message (`decoded`: the bus's, decoded once per message, or decoded here); anything
   * outside the namespace is ignored, a payload failing its schema is counted and ignored.
   */
  handle(topic: string, payload: Buffer, decoded: DecodeOnce = () => decode(topic, payload)): void {
    const result = decoded();
    if (!result.ok && result.reason === 'topic') return;
    this.counters.messages++;
    if (!result.ok && result.reason === 'removed') {
      this.removeAlarm(result.topic.line, result.topic.alarm);
      return;
    }
    if (!result.ok) {
      this.counters.invalid++;
      return;
    }
    const message = result.message;
    const { kind, line, device } = message;
    if (device !== undefined && kind !== 'cmd' && kind !== 'ack' && kind !== 'outcome' && !this.devices.has(`${line}/${device}`) && this.devices.size >= this.limits.maxDevices) {
      this.counters.over_capacity++;
      return;
    }
    switch (message.kind) {
      case 'state': {
        const p = message.payload;
        const d = this.device(line, message.device, p.ts);
        if (d.state !== p.state) d.stateSince = p.ts;
        d.state = p.state;
        d.reason = p.reason ?? null;
        if (p.type) d.type = p.type;
        if (p.station) d.station = p.station;
        if (p.strategy) {
          this.line(line).strategy = p.strategy;
          this.dirtyLines.add(line);
        }
        break;
      }
      case 'telemetry': {
        const p = message.payload;
        const d = this.device(line, message.device, p.ts);
        Object.assign(d.values, p.values);
        if (p.type) d.type = p.type;
        if (p.station) d.station = p.station;
        break;
      }
      case 'status': {
        const p = message.payload;
        const d = this.device(line, message.device, p.ts);
        d.online = p.status === 'online';
        if (p.type) d.type = p.type;
        break;
      }
      case 'cmd': {
        const p = message.payload;
        const key = `${line}/${device}/${p.id}`;
        const existing = this.commands.get(key);
        if (!existing) this.counters.commands++;
        this.commands.set(key, {
          id: p.id,
          line,
          device: message.device,
          action: p.action,
          params: p.params,
          origin: p.origin,
          ts: p.ts,
          expiresAt: p.expiresAt,
          ack: existing?.ack ?? null,
          ackReason: existing?.ackReason ?? null,
          ackTs: existing?.ackTs ?? null,
          outcome: existing?.outcome ?? null,
          outcomeReason: existing?.outcomeReason ?? null,
        });
        this.dirtyCommands.add(key);
        this.trimCommands();
        break;
      }
      case 'ack': {
        const p = message.payload;
        const key = `${line}/${device}/${p.id}`;
        const c = this.commands.get(key);
        if (!c) return; // an ack for a command we never saw (e.g. sent before we started)
        if (c.ack === null && (p.result === 'accepted' || p.result === 'done')) this.counters.commands_acked++;
        c.ack = p.result;
        c.ackReason = p.reason ?? null;
        c.ackTs = p.ts;
        this.dirtyCommands.add(key);
        // A completed strategy change is the freshest word on the line's strategy.
        if (p.result === 'done' && c.action === 'set_strategy' && typeof c.params.strategy === 'string') {
          const l = this.line(line);
          l.strategy = c.params.strategy as SummaryPayload['strategy'];
          this.dirtyLines.add(line);
        }
        break;
      }
      case 'outcome': {
        const p = message.payload;
        const key = `${line}/${device}/${p.id}`;
        let c = this.commands.get(key);
        if (!c) {
          // e.g. `blocked`: the command was never sent, so this is the first we hear of it.
          c = { id: p.id, line, device: message.device, action: p.action, params: p.params, origin: p.origin, ts: p.issuedAt, expiresAt: p.issuedAt, ack: null, ackReason: null, ackTs: null, outcome: null, outcomeReason: null };
          this.commands.set(key, c);
          this.trimCommands();
        }
        c.outcome = p.outcome;
        c.outcomeReason = p.reason ?? null;
        this.dirtyCommands.add(key);
        break;
      }
      case 'alert':
      case 'alarmSet':
        // The alert stream and operators' requests: the engine's alarm states (below) say what came of them.
        break;
      case 'alarm': {
        const p = message.payload;
        const key = `${line}/${p.id}`;
        const existing = this.alerts.get(key);
        if (existing && existing.rev >= p.rev) break; // the same state again (a restarted engine republishes it)
        this.noteTransition({ ...p, line });
        if (p.state === 'normal') {
          this.removeAlarm(line, alarmTopicId(p.id));
          break;
        }
        if (!existing && this.alerts.size >= this.limits.maxAlerts) {
          this.counters.over_capacity++;
          return;
        }
        this.alerts.set(key, { ...p, line });
        this.removedAlerts.delete(key);
        this.dirtyAlerts.add(key);
        break;
      }
      case 'summary': {
        const p = message.payload;
        Object.assign(this.line(line), p);
        this.dirtyLines.add(line);
        break;
      }
    }
  }

  snapshot(): LineSnapshot {
    return {
      devices: [...this.devices.values()],
      lines: [...this.lines.values()],
      commands: this.recentCommands(),
      alerts: this.alarms(),
      transitions: this.recentTransitions(),
    };
  }

  /** What changed since the last call, or undefined if nothing did. */
  takeDelta(): LineDelta | undefined {
    if (this.dirtyDevices.size + this.dirtyLines.size + this.dirtyCommands.size + this.dirtyAlerts.size + this.removedAlerts.size + this.newTransitions === 0) {
      return undefined;
    }
    const pick = <T>(keys: Set<string>, map: Map<string, T>): T[] => [...keys].map((k) => map.get(k)).filter((x): x is T => x !== undefined);
    const delta: LineDelta = {
      devices: pick(this.dirtyDevices, this.devices),
      lines: pick(this.dirtyLines, this.lines),
      commands: pick(this.dirtyCommands, this.commands),
      alerts: pick(this.dirtyAlerts, this.alerts),
      alertsRemoved: [...this.removedAlerts],
      transitions: this.recentTransitions().slice(0, this.newTransitions),
    };
    this.newTransitions = 0;
    this.dirtyDevices.clear();
    this.dirtyLines.clear();
    this.dirtyCommands.clear();
    this.dirtyAlerts.clear();
    this.removedAlerts.clear();
    return delta;
  }

  recentCommands(): CommandView[] {
    return [...this.commands.values()].reverse();
  }

  /** Every alarm that is not normal, shelved ones too, newest change first. */
  alarms(): AlertView[] {
    return [...this.alerts.values()].sort((a, b) => b.ts - a.ts);
  }

  /** The active list: alarms that are not normal and not shelved (the rules engine unshelves them when their time is up). */
  activeAlerts(): AlertView[] {
    return this.alarms().filter((alarm) => alarm.shelvedUntil === undefined);
  }

  /** Recent alarm transitions, newest first. */
  recentTransitions(): AlarmTransitionView[] {
    return [...this.transitions].reverse();
  }

  findAlert(id: string, line?: string): AlertView | undefined {
    for (const a of this.alerts.values()) if (a.id === id && (line === undefined || a.line === line)) return a;
    return undefined;
  }

  onlineDevices(): number {
    let n = 0;
    for (const d of this.devices.values()) if (d.online) n++;
    return n;
  }

  private device(line: string, device: string, ts: number): DeviceView {
    const key = `${line}/${device}`;
    let d = this.devices.get(key);
    if (!d) {
      d = { key, line, device, type: null, station: null, state: null, reason: null, stateSince: null, online: null, values: {}, lastSeen: ts };
      this.devices.set(key, d);
    }
    d.lastSeen = Math.max(d.lastSeen, ts);
    this.dirtyDevices.add(key);
    return d;
  }

  private line(line: string): LineSummaryView {
    let l = this.lines.get(line);
    if (!l) {
      l = { line, ts: 0 };
      this.lines.set(line, l);
    }
    return l;
  }

  private removeAlarm(line: string, topicId: string): void {
    for (const [key, alarm] of this.alerts) {
      if (alarm.line !== line || alarmTopicId(alarm.id) !== topicId) continue;
      this.alerts.delete(key);
      this.dirtyAlerts.delete(key);
      this.removedAlerts.add(key);
    }
  }

  private noteTransition(transition: AlarmTransitionView): void {
    this.transitions.push(transition);
    if (this.transitions.length > this.limits.maxTransitions) this.transitions.shift();
    this.newTransitions = Math.min(this.newTransitions + 1, this.limits.maxTransitions);
  }

  private trimCommands(): void {
    // Map iteration order is insertion order, so the first keys are the oldest.
    while (this.commands.size > this.limits.maxCommands) {
      const oldest = this.commands.keys().next().value as string;
      this.commands.delete(oldest);
      this.dirtyCommands.delete(oldest);
    }
  }
}
