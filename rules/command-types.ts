// The command loop's types: what it is given (options), what it reports (events) and what it keeps
// across restarts (its snapshot in the rules state file).
import type { Bus } from '../bus/bus.js';
import type { CommandAction, CommandOutcomePayload, CommandPayload } from '../contracts/schemas.js';
import type { Clock } from './clock.js';
import type { RulesSettings } from './config.js';
import type { IntentSnapshot } from './intents.js';
import type { ParamValue } from './load.js';
import type { SafetyDefinition } from './schema.js';
import type { TargetState } from './safety-policy.js';

export interface CommandEvent {
  type: 'command';
  line: string;
  target: string;
  command: CommandPayload;
  note?: string;
}

export interface OutcomeEvent {
  type: 'outcome';
  line: string;
  outcome: CommandOutcomePayload;
}

/** A limit (cooldown, dwell, budget) delays the winning intent until `until` (engine time); it is sent then if it still wins. */
export interface DeferEvent {
  type: 'deferred';
  line: string;
  target: string;
  action: CommandAction;
  params: Record<string, ParamValue>;
  origin: string;
  until: number;
  /** The limit's first word: cooldown, dwell or budget. */
  limit: string;
  reason: string;
}

export interface CommandCenterOptions {
  bus: Bus;
  /** Engine time: the limits, retries, expiry and completion timeouts. */
  clock: Clock;
  /** The line's event time, which commands and outcomes are stamped in (docs/rules.md#which-time). */
  lineNow: (line: string) => number;
  /** Prefix of command ids; unique per engine start. */
  idPrefix: string;
  settings: Pick<RulesSettings, 'ackTimeoutMs' | 'retries' | 'commandTtlMs' | 'completionTimeoutMs' | 'recommandLimit'>;
  safety: SafetyDefinition;
  onEvent: (event: CommandEvent | OutcomeEvent | DeferEvent) => void;
  /** Called when oscillation detection suspends a rule. */
  onSuspend: (suspension: { ruleId: string; line: string; target: string; key: string; until: number; reason: string }) => void;
  count: (counter: string) => void;
  /**
   * A shadow rule set's loop (docs/rules.md#shadow): a command is published (on the shadow bus)
   * and recorded at once as outcome `shadow`, taken as the setpoint from then on; nothing waits
   * for an ack (none comes), so no retry, expiry or re-command.
   */
  shadow?: boolean;
}

export interface Pending {
  command: CommandPayload;
  line: string;
  target: string;
  attempts: number;
  retryAt: number;
  accepted: boolean;
  /** Engine time of the `accepted` ack: the completion timeout counts from it. */
  acceptedAt?: number;
  /**
   * Engine time it expires at: sent + its ttl (the payload's expiresAt is in its line's event
   * time, as its ts). Absent in a state file written before it was kept: command.expiresAt then.
   */
  expiresAt?: number;
}

/** A command the loop stopped waiting for (expired, or accepted and not completed in time): a later ack is still its outcome. */
export interface GivenUp {
  command: CommandPayload;
  line: string;
  target: string;
  attempts: number;
  /** Why it was given up, for the late outcome's reason. */
  why: string;
}

/** The value a device last acknowledged for a setpoint, and the device time of that ack. */
export interface Acknowledged {
  value: ParamValue;
  ts: number;
  commandId: string;
}

export interface CommandCenterSnapshot {
  targets: Record<string, TargetState>;
  suspended: Record<string, number>;
  pending: Pending[];
  intents?: IntentSnapshot;
  givenUp?: GivenUp[];
  acknowledged?: Record<string, Acknowledged>;
  nextId: number;
}
