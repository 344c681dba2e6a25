// The command loop's types: what it is given (options), what it reports (events, the result of
// an issue) and what it keeps across restarts (its snapshot in the rules state file).
import type { Bus } from '../bus/bus.js';
import type { CommandOutcomePayload, CommandPayload } from '../contracts/schemas.js';
import type { Clock } from './clock.js';
import type { ParamValue } from './load.js';
import type { SafetyDefinition } from './schema.js';
import type { CommandRequest, Hold, TargetState } from './safety-policy.js';

export type IssueResult = { sent: true; id: string; params: Record<string, ParamValue>; note?: string } | { sent: false; id: string; reason: string };

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

export interface CommandCenterOptions {
  bus: Bus;
  clock: Clock;
  /** Prefix of command ids; unique per engine start. */
  idPrefix: string;
  ackTimeoutMs: number;
  retries: number;
  ttlMs: number;
  safety: SafetyDefinition;
  onEvent: (event: CommandEvent | OutcomeEvent) => void;
  /** Called when oscillation detection suspends a rule. */
  onSuspend: (suspension: { ruleId: string; line: string; target: string; key: string; until: number; reason: string }) => void;
  count: (counter: string) => void;
}

export interface Ramp {
  req: CommandRequest;
  /** Where the ramp ends. */
  goal: number;
  nextAt: number;
}

export interface Pending {
  command: CommandPayload;
  line: string;
  target: string;
  attempts: number;
  retryAt: number;
  accepted: boolean;
}

export interface CommandCenterSnapshot {
  targets: Record<string, TargetState>;
  holds: Record<string, Hold>;
  suspended: Record<string, number>;
  pending: Pending[];
  ramps: Record<string, Ramp>;
  nextId: number;
}
