// The device messages the engine refuses (a device ts too far in the future), reported on the
// dead-letter topic lw/_dead/rules with the reason, as the broker reports the payloads it refuses
// (docs/topics-and-payloads.md#dead-letter). The engine publishes as itself: `clientId` is
// `rules` (it does not know which MQTT client sent the message; `topic` names the device). Each
// one is also logged, at a bounded rate.
import type { Bus } from '../bus/bus.js';
import { DEAD_LETTER_PAYLOAD_BYTES, type DeadLetterPayload } from '../contracts/schemas.js';
import { topicOf, topics } from '../contracts/topics.js';
import { LogLimiter } from '../lib/log-limit.js';
import { logger } from '../lib/log.js';
import type { Clock } from './clock.js';
import type { DeviceEvent } from './device-table.js';

/** The level of lw/_dead/{clientId} the engine publishes on, and the dead letter's clientId. */
export const RULES_DEAD_LETTER_ID = 'rules';
/** As the broker's dead letters (broker/publish-validation.ts). */
export const DEAD_LETTER_QOS = 1;

const log = logger('rules');

export class DeadLetters {
  private readonly limitedLog = new LogLimiter(log);

  constructor(
    private readonly bus: Bus,
    private readonly clock: Clock,
    private readonly count: (name: string) => void,
  ) {}

  /** Reports `event` as refused for `reason` (`kind` names the refusal, e.g. future_ts). */
  refused(event: DeviceEvent, kind: string, reason: string): void {
    const topic = topicOf(event.kind, event.line, event.device);
    const letter: DeadLetterPayload = {
      ts: this.clock.now(),
      clientId: RULES_DEAD_LETTER_ID,
      topic,
      reason: `${kind}: ${reason}`,
      // The message as the engine decoded it, re-encoded (the raw bytes are not kept past decoding).
      payload: Buffer.from(JSON.stringify(event.payload)).subarray(0, DEAD_LETTER_PAYLOAD_BYTES).toString('base64'),
    };
    this.limitedLog.write('warn', kind, { topic, reason }, 'refused a device message; sent it to the dead-letter topic');
    this.bus.publish(topics.deadLetter(RULES_DEAD_LETTER_ID), JSON.stringify(letter), { qos: DEAD_LETTER_QOS }).catch((err: unknown) => {
      this.count('dead_letters_lost');
      this.limitedLog.write('warn', 'dead_letter_lost', { topic, err: (err as Error).message }, 'a dead letter could not be published');
    });
  }
}
