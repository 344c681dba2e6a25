// What a connected client may do — Aedes's authorizePublish, authorizeSubscribe and
// authorizeForward hooks: the ACL of its account's role (acl.ts), $SYS kept for the broker, and
// payload validation on linewatch topics (publish-validation.ts). A refused publish is still
// acknowledged, then forwarded to nobody (drop-refused.ts).
import type { AedesOptions, PublishPacket } from 'aedes';
import { logger } from '../lib/log.js';
import { mayPublish, maySubscribe } from './acl.js';
import type { Authentication } from './authentication.js';
import type { PublishValidation } from './publish-validation.js';
import type { BrokerCounters } from './stats.js';

const log = logger('broker');

/** What refusing a publish takes; it exists only once Aedes does, so the broker binds it right after creating Aedes, before any listener opens. */
export interface PublishRefusal {
  /** Marks a publish authorizePublish lets through: acknowledged and forwarded to nobody. */
  drop(packet: PublishPacket): void;
  /** Undefined when broker.validatePayloads is off. */
  readonly validation: PublishValidation | undefined;
}

export class Authorization {
  private refusal: PublishRefusal | undefined;

  constructor(
    private readonly authentication: Authentication,
    private readonly counters: BrokerCounters,
  ) {}

  bind(refusal: PublishRefusal): void {
    this.refusal = refusal;
  }

  readonly authorizePublish: NonNullable<AedesOptions['authorizePublish']> = (client, packet, callback) => {
    // client is null only for wills of sessions from before a restart: already authorized then.
    if (!client) return callback(null);
    const refusal = this.refusal;
    if (!refusal) return callback(new Error('the broker is still starting (broker/authorization.ts: bind() comes before the listeners open)'));
    this.counters.messagesIn++;
    const rules = this.authentication.rulesOf(client);
    // $SYS is the broker's own, even in open mode (Aedes's default refuses it too).
    if (packet.topic.startsWith('$SYS') || (rules && !mayPublish(rules, packet.topic))) {
      this.counters.reject('publish_denied');
      log.debug({ clientId: client.id, topic: packet.topic }, 'dropped a publish the ACL does not allow');
      refusal.drop(packet);
      return callback(null);
    }
    const { validation } = refusal;
    const problem = validation?.problem(packet);
    if (validation && problem) {
      this.counters.reject('invalid_payload');
      refusal.drop(packet);
      validation.deadLetter(client.id, packet, problem);
    }
    callback(null);
  };

  readonly authorizeSubscribe: NonNullable<AedesOptions['authorizeSubscribe']> = (client, subscription, callback) => {
    const rules = this.authentication.rulesOf(client);
    if (rules && !maySubscribe(rules, subscription.topic)) {
      this.counters.reject('subscribe_denied');
      log.debug({ clientId: client.id, topic: subscription.topic }, 'refused a subscription the ACL does not allow');
      return callback(null, null); // SUBACK 0x80
    }
    callback(null, subscription);
  };

  readonly authorizeForward: NonNullable<AedesOptions['authorizeForward']> = (_client, packet) => {
    this.counters.messagesOut++;
    return packet;
  };
}
