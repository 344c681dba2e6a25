// Payload validation on linewatch topics: what authorizePublish decodes is kept with the payload
// (decoded.ts: in-process subscribers get it, not a second parse), and a payload that fails its
// schema is reported on the dead-letter topic lw/_dead/{clientId} with the reason.
import type { PublishPacket } from 'aedes';
import { topics } from '../contracts/index.js';
import type { LogLimiter } from '../lib/log-limit.js';
import type { DecodedMessages } from './decoded.js';
import type { InProcessBus } from './in-process-bus.js';
import type { BrokerCounters } from './stats.js';

/** The first bytes of a refused payload kept in the dead letter. */
const DEAD_LETTER_PAYLOAD_BYTES = 1024;

/** A client id made safe as one topic level. */
function topicLevel(id: string): string {
  return id.replace(/[/+#]/g, '_') || '_';
}

export class PublishValidation {
  constructor(
    private readonly decoded: DecodedMessages,
    /** Dead letters go in-process, so that a historian that refuses one (spool full) gets it again (InProcessBus.publish). */
    private readonly bus: InProcessBus,
    private readonly counters: BrokerCounters,
    private readonly limitedLog: LogLimiter,
  ) {}

  /** Why this payload fails its schema; undefined if it passes or is not on a linewatch payload topic (the ACL decides those). */
  problem(packet: PublishPacket): string | undefined {
    const result = this.decoded.decodePublish(packet.topic, packet.payload);
    return !result.ok && result.reason === 'schema' ? result.error : undefined;
  }

  deadLetter(clientId: string, packet: PublishPacket, reason: string): void {
    const raw = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const letter = {
      ts: Date.now(),
      clientId,
      topic: packet.topic,
      reason,
      payload: raw.subarray(0, DEAD_LETTER_PAYLOAD_BYTES).toString('base64'),
    };
    this.limitedLog.write('info', 'invalid_payload', { clientId, topic: packet.topic, reason }, 'refused an invalid payload; sent it to the dead-letter topic');
    this.bus.publish(topics.deadLetter(topicLevel(clientId)), JSON.stringify(letter), { qos: 1 }).catch((err: unknown) => {
      this.counters.deadLettersLost++;
      this.limitedLog.write('warn', 'dead_letter_lost', { clientId, topic: packet.topic, err: (err as Error).message }, 'a dead letter was not stored (it reached the live subscribers)');
    });
  }
}
