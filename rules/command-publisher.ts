// What the command loop puts on the bus: commands on lw/{line}/{target}/cmd and their outcomes on
// lw/{line}/{target}/cmd/outcome (counted, and handed to onEvent for `rules test`'s timeline).
import type { Bus } from '../bus/bus.js';
import type { CommandOutcome, CommandOutcomePayload, CommandPayload } from '../contracts/schemas.js';
import { DELIVERY, topics } from '../contracts/topics.js';
import { logger } from '../lib/log.js';
import type { OutcomeEvent } from './command-types.js';

const log = logger('rules');

/** An outcome's reason is at most this long. */
const REASON_CHARS = 256;

export interface CommandPublisherOptions {
  bus: Bus;
  /** The line's event time: an outcome's ts unless the device's ack gives it. */
  lineNow: (line: string) => number;
  count: (counter: string) => void;
  onOutcome: (event: OutcomeEvent) => void;
}

export class CommandPublisher {
  constructor(private readonly options: CommandPublisherOptions) {}

  send(line: string, target: string, command: CommandPayload): void {
    this.options.bus.publish(topics.cmd(line, target), JSON.stringify(command), DELIVERY.cmd).catch((err: unknown) => {
      // The retry in the loop's tick sends it again; the outcome says if it never got through.
      this.options.count('publish_errors');
      log.warn({ err: (err as Error).message, id: command.id }, 'could not publish a command; it will be retried');
    });
  }

  /** Publishes what became of `command`, at `ts` (the ack's, when a device's ack says it) or now in its line's event time. */
  record(line: string, target: string, command: CommandPayload, outcome: CommandOutcome, attempts: number, reason?: string, ts = this.options.lineNow(line)): void {
    const payload: CommandOutcomePayload = {
      id: command.id,
      action: command.action,
      params: command.params,
      origin: command.origin,
      target,
      outcome,
      attempts,
      ...(reason ? { reason: reason.slice(0, REASON_CHARS) } : {}),
      issuedAt: command.ts,
      ts,
    };
    this.options.count(`outcome_${outcome}`);
    this.options.onOutcome({ type: 'outcome', line, outcome: payload });
    this.options.bus.publish(topics.outcome(line, target), JSON.stringify(payload), DELIVERY.outcome).catch((err: unknown) => {
      this.options.count('publish_errors');
      log.warn({ err: (err as Error).message, id: command.id }, 'could not publish a command outcome');
    });
  }
}
