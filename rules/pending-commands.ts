// The commands sent and not yet finished (docs/rules.md#commands-as-a-closed-loop): each waits
// `ackTimeoutMs` for its cmd/ack and is re-sent (same id) up to `retries` times before `expiresAt`,
// else it expired; an `accepted` one waits for `done`/`failed` until its action's completion
// timeout. A command given up on (expired, or not completed in time) is kept (the last 1,000), so
// an ack that arrives later is still recorded as its outcome (`acks_late`), never `acks_unknown`.
import type { AckPayload, CommandOutcome, CommandPayload } from '../contracts/schemas.js';
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import type { CommandPublisher } from './command-publisher.js';
import type { CommandCenterOptions, GivenUp, Pending } from './command-types.js';

const log = logger('rules');

/** Commands given up on whose late outcome is still recorded; the oldest are forgotten beyond this. */
const GIVEN_UP_KEPT = 1000;

export interface PendingCommandsOptions {
  settings: CommandCenterOptions['settings'];
  now: () => number;
  count: (counter: string) => void;
  publisher: CommandPublisher;
  /** The device took the command (accepted or done, at device time `ts`); `late`: after it was given up. */
  took: (line: string, target: string, command: CommandPayload, ts: number, late: boolean) => void;
  /** It was rejected, failed or expired. */
  refused: (line: string, target: string, command: CommandPayload, outcome: CommandOutcome) => void;
}

export class PendingCommands {
  private pending = new Map<string, Pending>();
  private givenUp = new Map<string, GivenUp>();
  private readonly limited: LogLimiter;

  constructor(private readonly options: PendingCommandsOptions) {
    this.limited = new LogLimiter(log, { now: options.now });
  }

  get size(): number {
    return this.pending.size;
  }

  /** A command just sent, to expire `ttlMs` of engine time from now: it waits for its ack. */
  add(command: CommandPayload, line: string, target: string, ttlMs: number): void {
    const now = this.options.now();
    this.pending.set(command.id, { command, line, target, attempts: 1, retryAt: now + this.options.settings.ackTimeoutMs, accepted: false, expiresAt: now + ttlMs });
  }

  onAck(line: string, device: string, ack: AckPayload): void {
    const waiting = this.pending.get(ack.id);
    if (!waiting || waiting.line !== line || waiting.target !== device) return this.lateAck(line, device, ack);
    const { publisher } = this.options;
    if (ack.result === 'accepted') {
      if (waiting.accepted) return;
      waiting.accepted = true;
      waiting.acceptedAt = this.options.now();
      this.options.took(line, device, waiting.command, ack.ts, false);
      publisher.record(line, device, waiting.command, 'accepted', waiting.attempts, ack.reason, ack.ts);
      return;
    }
    this.pending.delete(ack.id);
    if (ack.result === 'done') this.options.took(line, device, waiting.command, ack.ts, false);
    else this.options.refused(line, device, waiting.command, ack.result);
    publisher.record(line, device, waiting.command, ack.result, waiting.attempts, ack.reason, ack.ts);
  }

  /** An ack for a command no longer pending: the outcome of one given up on (counted acks_late), else unknown. */
  private lateAck(line: string, device: string, ack: AckPayload): void {
    const late = this.givenUp.get(ack.id);
    if (!late || late.line !== line || late.target !== device) {
      this.options.count('acks_unknown');
      return;
    }
    this.options.count('acks_late');
    if (ack.result !== 'accepted') this.givenUp.delete(ack.id);
    if (ack.result === 'done' || ack.result === 'accepted') this.options.took(line, device, late.command, ack.ts, true);
    else this.options.refused(line, device, late.command, ack.result);
    this.limited.write('warn', 'ack_late', { id: ack.id, target: `${line}/${device}`, result: ack.result }, `command ${ack.id} to ${line}/${device}: ${ack.result} arrived after the engine stopped waiting (${late.why}); recorded as its outcome`);
    this.options.publisher.record(line, device, late.command, ack.result, late.attempts, `late (${late.why})${ack.reason ? `: ${ack.reason}` : ''}`, ack.ts);
  }

  /** Retries, expiries and completion timeouts at engine time `now`. */
  tick(now: number): void {
    const { ackTimeoutMs, retries, completionTimeoutMs } = this.options.settings;
    for (const [id, waiting] of this.pending) {
      if (waiting.accepted) {
        const timeout = completionTimeoutMs[waiting.command.action];
        // acceptedAt is set with accepted; a state file older than it kept command.ts in engine time.
        if (now < (waiting.acceptedAt ?? waiting.command.ts) + timeout) continue;
        this.pending.delete(id);
        this.options.count('completions_timed_out');
        const why = `accepted, no done or failed within ${timeout} ms (rules.completionTimeoutMs.${waiting.command.action})`;
        this.limited.write('warn', 'completion_timeout', { id, target: `${waiting.line}/${waiting.target}` }, `command ${id} to ${waiting.line}/${waiting.target}: ${why}; a later done or failed is still recorded`);
        this.giveUp(waiting, why);
        continue;
      }
      if (now < waiting.retryAt) continue;
      if (waiting.attempts <= retries && now < (waiting.expiresAt ?? waiting.command.expiresAt)) {
        waiting.attempts++;
        waiting.retryAt = now + ackTimeoutMs;
        this.options.count('commands_retried');
        this.options.publisher.send(waiting.line, waiting.target, waiting.command);
        continue;
      }
      this.pending.delete(id);
      this.options.refused(waiting.line, waiting.target, waiting.command, 'expired');
      this.giveUp(waiting, `expired: no ack after ${waiting.attempts} attempt(s)`);
      this.options.publisher.record(waiting.line, waiting.target, waiting.command, 'expired', waiting.attempts, `no ack after ${waiting.attempts} attempt(s)`);
    }
  }

  private giveUp(waiting: Pending, why: string): void {
    this.givenUp.set(waiting.command.id, { command: waiting.command, line: waiting.line, target: waiting.target, attempts: waiting.attempts, why });
    if (this.givenUp.size > GIVEN_UP_KEPT) this.givenUp.delete(this.givenUp.keys().next().value!);
  }

  snapshot(): { pending: Pending[]; givenUp: GivenUp[] } {
    return { pending: [...this.pending.values()], givenUp: [...this.givenUp.values()] };
  }

  restore(pending: readonly Pending[], givenUp: readonly GivenUp[] = []): void {
    this.pending = new Map(pending.map((waiting) => [waiting.command.id, waiting]));
    this.givenUp = new Map(givenUp.map((late) => [late.command.id, late]));
  }
}
