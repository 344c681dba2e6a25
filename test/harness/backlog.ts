// A persistent subscriber's backlog, with real MQTT clients: the subscriber (clean=false, QoS 1)
// subscribes and goes away, a publisher sends `backlog` QoS 1 messages, the subscriber comes back
// and drains them while a second publisher keeps publishing QoS 1 one message at a time, each
// PUBACK awaited within a bounded wait. What came back is counted per message (exactly once?).
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { waitFor, withTimeout } from '../../lib/wait.js';

export interface BacklogOptions {
  url: string;
  /** Messages queued while the subscriber is away. */
  backlog: number;
  /** The subscriber's client id (its persistent session). */
  clientId: string;
  topic: string;
  /** How long one publish of the live publisher may wait for its PUBACK while the backlog drains. */
  pubackWaitMs: number;
  /** How long the whole drain may take. */
  drainWaitMs: number;
  /** Credentials etc. for every client (none in open mode). */
  clientOptions?: IClientOptions;
  /** Called just before the subscriber reconnects (e.g. to reset a work counter). */
  beforeDrain?: () => void;
}

export interface BacklogResult {
  /** Distinct messages the subscriber received. */
  delivered: number;
  /** Messages it received more than once (counted once per extra copy). */
  duplicates: number;
  /** Messages published (backlog and live) it never received. */
  missing: number;
  /** Live QoS 1 publishes made while the backlog drained, every one acknowledged within pubackWaitMs. */
  livePublished: number;
  /** Milliseconds from the reconnect to the last backlog message (a report, never an assertion). */
  drainMs: number;
}

/** How many backlog publishes are in flight at once (MQTT.js queues them). */
const PUBLISH_WINDOW = 500;

async function connect(url: string, options: IClientOptions): Promise<MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, ...options });
}

export async function drainBacklog(options: BacklogOptions): Promise<BacklogResult> {
  const { url, backlog, clientId, topic, clientOptions = {} } = options;
  const subscriberOptions: IClientOptions = { ...clientOptions, clientId, clean: false };
  const first = await connect(url, subscriberOptions);
  await first.subscribeAsync(topic, { qos: 1 });
  await first.endAsync();

  const publisher = await connect(url, { ...clientOptions, clientId: `${clientId}-pub` });
  const live = await connect(url, { ...clientOptions, clientId: `${clientId}-live` });
  const received = new Map<string, number>();
  let subscriber: MqttClient | undefined;
  try {
    for (let start = 0; start < backlog; start += PUBLISH_WINDOW) {
      const window: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(backlog, start + PUBLISH_WINDOW); i++) window.push(publisher.publishAsync(topic, `b:${i}`, { qos: 1 }));
      await withTimeout(Promise.all(window), options.drainWaitMs, `PUBACKs for backlog messages ${start}…`);
    }
    options.beforeDrain?.();
    let backlogReceived = 0;
    const started = Date.now();
    let drainMs = 0;
    subscriber = mqtt.connect(url, { reconnectPeriod: 0, ...subscriberOptions });
    subscriber.on('message', (_topic, payload) => {
      const key = payload.toString();
      const times = (received.get(key) ?? 0) + 1;
      received.set(key, times);
      if (times === 1 && key.startsWith('b:') && ++backlogReceived === backlog) drainMs = Date.now() - started;
    });
    // While it drains, the live publisher keeps publishing, one PUBACK at a time.
    let livePublished = 0;
    while (backlogReceived < backlog) {
      await withTimeout(live.publishAsync(topic, `l:${livePublished}`, { qos: 1 }), options.pubackWaitMs, `the PUBACK of live publish ${livePublished} while ${backlog - backlogReceived} backlog messages still drain`);
      livePublished++;
      if (Date.now() - started > options.drainWaitMs) throw new Error(`the backlog did not drain in ${options.drainWaitMs} ms (${backlogReceived} of ${backlog})`);
    }
    const total = backlog + livePublished;
    await waitFor(() => received.size >= total, options.drainWaitMs, `all ${total} messages at the subscriber`).catch(() => undefined);
    let duplicates = 0;
    for (const times of received.values()) duplicates += times - 1;
    return { delivered: received.size, duplicates, missing: total - received.size, livePublished, drainMs };
  } finally {
    await Promise.all([publisher.endAsync(true), live.endAsync(true), subscriber?.endAsync(true)]);
  }
}
