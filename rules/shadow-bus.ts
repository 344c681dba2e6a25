// The bus a shadow rule set runs on (docs/rules.md#shadow): the same device events as the live
// engine, and everything else under the shadow root. It wraps the live engine's bus:
//   - subscribe: the device events (state, telemetry, status, of every line or of a worker's
//     lines: lw/+/+/state, lw/A/+/state) are the live topics; every other
//     filter (command acks, alarm states, alarm requests) is its shadow topic — a shadow command
//     goes to no device, so no device acks it, and the shadow's alarms are its own;
//   - publish: every topic is moved under lw/_shadow/ (commands, outcomes, alerts, alarms, dead
//     letters), and a publish of a device event (state, telemetry, status) is refused.
// So nothing the shadow engine publishes can be a device's command topic, whatever its rules say;
// the broker's ACL grants no device anything under lw/_shadow/ (test/rules/shadow.test.ts).
import type { Bus, ConnectionListener, MessageHandler, PublishOptions, SubscribeOptions, Unsubscribe } from '../bus/bus.js';
import { decode } from '../contracts/decode.js';
import { isDeviceEventFilter, shadowTopic, unshadowTopic } from '../contracts/topics.js';

export class ShadowBus implements Bus {
  constructor(private readonly live: Bus) {}

  /** Publishes `topic`'s shadow topic; a device event is refused (a rule engine never speaks for a device). */
  publish(topic: string, payload: string | Buffer, options?: PublishOptions): Promise<void> {
    if (isDeviceEventFilter(topic)) {
      return Promise.reject(new Error(`shadow rules: refused to publish the device topic ${topic}; a shadow rule set publishes only under lw/_shadow/`));
    }
    let shadow: string;
    try {
      shadow = shadowTopic(topic);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.live.publish(shadow, payload, options);
  }

  subscribe(filter: string | string[], handler: MessageHandler, options?: SubscribeOptions): Promise<Unsubscribe> {
    const filters = (Array.isArray(filter) ? filter : [filter]).map((f) => (isDeviceEventFilter(f) ? f : shadowTopic(f)));
    return this.live.subscribe(
      filters,
      (topic, payload, decoded) => {
        const live = unshadowTopic(topic);
        if (live === undefined) return handler(topic, payload, decoded);
        // Decoded as the live topic it stands for, once per message for this handler.
        let result: ReturnType<typeof decode> | undefined;
        return handler(live, payload, () => (result ??= decode(live, payload)));
      },
      options,
    );
  }

  /** The live bus is the live engine's: it closes it. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  connected(): boolean {
    return this.live.connected();
  }

  onConnectionChange(listener: ConnectionListener): () => void {
    return this.live.onConnectionChange(listener);
  }
}

