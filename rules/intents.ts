// Setpoints as held intents (docs/rules.md#intents). A rule that commands a setpoint of a target
// (speed, strategy, run/stop; a reset is a one-shot) states what it wants: while its instance is
// active (`active` intent, released when it clears) and, through onClear, after (`after` intent,
// standing until the same instance states another). Per `line/target|key` the winning intent is
// the one the command loop (commands.ts) drives the device towards: an active intent before any
// after intent, then the higher priority, then the more recent.
import type { ParamValue } from './load.js';
import { setpointOf, type CommandRequest } from './safety-policy.js';
import type { DeviceEvent } from './device-table.js';

export interface Intent {
  request: CommandRequest;
  phase: 'active' | 'after';
  /** The value it wants the setpoint at. */
  value: ParamValue;
  /** Order of statement, for recency. */
  seq: number;
  /** Engine time it was stated. */
  at: number;
  /** The last command sent for it. */
  commandId?: string;
  /** The device refused it (rejected, failed: not sent again until restated) or it expired (sent again once the device is heard from). */
  settled?: string;
  /** A delay (cooldown, dwell, budget) was reported for it: `kind` of the limit. */
  deferredBy?: string;
  /** Its blocked outcome (refused for good) was recorded. */
  blockedReported?: boolean;
}

export interface IntentSnapshot {
  byKey: Record<string, Intent[]>;
  nextSeq: number;
}

/** `line/target|key`: the setpoint a request changes. */
export function setpointKeyOf(request: Pick<CommandRequest, 'line' | 'target' | 'action' | 'params'>): string {
  return `${request.line}/${request.target}|${setpointOf(request.action, request.params).key}`;
}

/** Whether `a` outranks `b`: active before after, then priority, then recency. */
function outranks(a: Intent, b: Intent): boolean {
  if (a.phase !== b.phase) return a.phase === 'active';
  if (a.request.priority !== b.request.priority) return a.request.priority > b.request.priority;
  return a.seq > b.seq;
}

export class IntentTable {
  private byKey = new Map<string, Intent[]>();
  private nextSeq = 0;

  /** States `request` for its setpoint: it replaces what the same instance stated there before. */
  state(request: CommandRequest, phase: Intent['phase'], now: number): string {
    const key = setpointKeyOf(request);
    const intents = (this.byKey.get(key) ?? []).filter((intent) => intent.request.holder !== request.holder);
    intents.push({ request, phase, value: setpointOf(request.action, request.params).value, seq: ++this.nextSeq, at: now });
    this.byKey.set(key, intents);
    return key;
  }

  /** The instance cleared: its active intents end. Returns the setpoints whose intents changed. */
  release(holder: string): string[] {
    return this.retain((intent) => intent.phase !== 'active' || intent.request.holder !== holder);
  }

  /** Keeps only the intents `keep` says (e.g. those of rules still loaded). Returns the setpoints whose intents changed. */
  retain(keep: (intent: Intent) => boolean): string[] {
    const changed: string[] = [];
    for (const [key, intents] of this.byKey) {
      const kept = intents.filter(keep);
      if (kept.length === intents.length) continue;
      changed.push(key);
      if (kept.length > 0) this.byKey.set(key, kept);
      else this.byKey.delete(key);
    }
    return changed;
  }

  /** A one-shot (a reset) was sent: its intent is done. */
  consume(key: string, intent: Intent): void {
    const kept = (this.byKey.get(key) ?? []).filter((other) => other !== intent);
    if (kept.length > 0) this.byKey.set(key, kept);
    else this.byKey.delete(key);
  }

  winner(key: string): Intent | undefined {
    let best: Intent | undefined;
    for (const intent of this.byKey.get(key) ?? []) if (!best || outranks(intent, best)) best = intent;
    return best;
  }

  /** The intent a command was sent for, if it is still stated. */
  byCommand(key: string, commandId: string): Intent | undefined {
    return this.byKey.get(key)?.find((intent) => intent.commandId === commandId);
  }

  keys(): string[] {
    return [...this.byKey.keys()];
  }

  size(): number {
    let count = 0;
    for (const intents of this.byKey.values()) count += intents.length;
    return count;
  }

  snapshot(): IntentSnapshot {
    return { byKey: Object.fromEntries(this.byKey), nextSeq: this.nextSeq };
  }

  restore(snapshot: IntentSnapshot | undefined): void {
    this.byKey = new Map(Object.entries(snapshot?.byKey ?? {}));
    this.nextSeq = snapshot?.nextSeq ?? 0;
  }
}

/**
 * The setpoints a device reports in a message, by setpoint key: a speed setpoint in its readings
 * (`speedSetpoint`, else `setpoint`), a line controller's `strategy` in its state. Run/stop is not
 * compared: a station's state says more than whether it was told to run.
 */
export function reportedSetpoints(event: DeviceEvent): { key: string; value: ParamValue }[] {
  const reported: { key: string; value: ParamValue }[] = [];
  if (event.kind === 'telemetry') {
    const speed = event.payload.values.speedSetpoint ?? event.payload.values.setpoint;
    if (typeof speed === 'number') reported.push({ key: 'speed', value: speed });
  } else if (event.kind === 'state' && event.payload.strategy !== undefined) {
    reported.push({ key: 'strategy', value: event.payload.strategy });
  }
  return reported;
}
