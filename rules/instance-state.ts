// The state of each rule instance (one per device, or per line for lineCount, or per expected
// device for absence) and its state machine: idle → pending (`for`) → active → (clear,
// `clearFor`) → idle. Edge-triggered: the engine runs a rule's actions only on the step into
// active and its clear only on the step out. Timers run on event time while messages come and
// on the engine clock (`tick`) when they stop.
import type { AlertPayload } from '../contracts/schemas.js';
import type { Truth } from './expr.js';
import type { CompiledRule } from './load.js';
import type { Window } from './windows.js';

export interface Instance {
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
  window?: Window;
  alert?: AlertPayload;
}

/** What a step asks the engine to do: raise (run the actions) or clear the instance. */
export type Transition = 'activate' | 'deactivate' | undefined;

export class InstanceTable {
  private readonly byRule = new Map<string, Map<string, Instance>>();
  /** Instances with a running `for` or `clearFor` timer. */
  private readonly timed = new Set<Instance>();

  /** The instance of `rule` for `key`, made idle the first time. */
  of(rule: CompiledRule, key: string, line: string, device: string | undefined): Instance {
    let instances = this.byRule.get(rule.id);
    if (!instances) {
      instances = new Map();
      this.byRule.set(rule.id, instances);
    }
    let instance = instances.get(key);
    if (!instance) {
      instance = { ruleId: rule.id, key, line, device, phase: 'idle' };
      instances.set(key, instance);
    }
    return instance;
  }

  find(ruleId: string, key: string): Instance | undefined {
    return this.byRule.get(ruleId)?.get(key);
  }

  /** Every rule id with instances, and its instances. */
  entries(): IterableIterator<[string, Map<string, Instance>]> {
    return this.byRule.entries();
  }

  active(): Instance[] {
    const active: Instance[] = [];
    for (const instances of this.byRule.values()) for (const instance of instances.values()) if (instance.phase === 'active') active.push(instance);
    return active;
  }

  /** Forgets the rule's instances and their timers. */
  dropRule(ruleId: string): void {
    for (const instance of this.byRule.get(ruleId)?.values() ?? []) this.timed.delete(instance);
    this.byRule.delete(ruleId);
  }

  /** Instances whose `for` or `clearFor` timer runs (a copy: stepping them changes the set). */
  withTimers(): Instance[] {
    return [...this.timed];
  }

  stopTimer(instance: Instance): void {
    this.timed.delete(instance);
  }

  /** Puts back an instance from the state file; its timer runs again if it had one. */
  restore(rule: CompiledRule, saved: Instance): void {
    const instance = this.of(rule, saved.key, saved.line, saved.device);
    Object.assign(instance, saved);
    if (instance.phase === 'pending' || instance.clearSince !== undefined) this.timed.add(instance);
  }

  /**
   * One evaluation of the rule's condition (`holds`) at event time `ts`, engine time `now`;
   * `clears` is the rule's clear condition, read while active (default: the condition no longer holds).
   * Either may be unknown (undefined: it read a value the message lacks): that changes nothing,
   * neither a phase nor a timer (missing ≠ false).
   */
  step(rule: CompiledRule, instance: Instance, holds: Truth, clears: Truth, ts: number, now: number): Transition {
    switch (instance.phase) {
      case 'idle':
        if (holds !== true) return undefined;
        if (rule.forMs === 0) return 'activate';
        instance.phase = 'pending';
        instance.since = ts;
        instance.sinceClock = now;
        this.timed.add(instance);
        return undefined;
      case 'pending':
        if (holds === undefined) return undefined;
        if (!holds) {
          instance.phase = 'idle';
          instance.since = instance.sinceClock = undefined;
          this.timed.delete(instance);
          return undefined;
        }
        return ts - (instance.since ?? ts) >= rule.forMs ? 'activate' : undefined;
      case 'active':
        if (clears === undefined) return undefined;
        if (!clears) {
          instance.clearSince = instance.clearSinceClock = undefined;
          this.timed.delete(instance);
          return undefined;
        }
        if (rule.clearForMs === 0) return 'deactivate';
        if (instance.clearSince === undefined) {
          instance.clearSince = ts;
          instance.clearSinceClock = now;
          this.timed.add(instance);
          return undefined;
        }
        return ts - instance.clearSince >= rule.clearForMs ? 'deactivate' : undefined;
    }
  }

  /** A timer that ran out on the engine clock without a new message. */
  due(rule: CompiledRule, instance: Instance, now: number): Transition {
    if (instance.phase === 'pending' && now - (instance.sinceClock ?? now) >= rule.forMs) return 'activate';
    if (instance.phase === 'active' && instance.clearSinceClock !== undefined && now - instance.clearSinceClock >= rule.clearForMs) return 'deactivate';
    return undefined;
  }

  /** Into active at `now`: the timers end. */
  activated(instance: Instance, now: number): void {
    instance.phase = 'active';
    instance.activatedAt = now;
    instance.since = instance.sinceClock = instance.clearSince = instance.clearSinceClock = undefined;
    this.timed.delete(instance);
  }

  /** Back to idle: the timers end. */
  deactivated(instance: Instance): void {
    instance.phase = 'idle';
    instance.since = instance.sinceClock = instance.clearSince = instance.clearSinceClock = undefined;
    this.timed.delete(instance);
  }
}
