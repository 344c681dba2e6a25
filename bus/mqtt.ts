// Bus over an MQTT.js client: lets any service run in its own process against any broker.
import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { clientIdFor } from '../contracts/client-id.js';
import { decode, type Decoded } from '../contracts/decode.js';
import { topicMatches, unsharedFilter } from '../contracts/topics.js';
import { logger } from '../lib/log.js';
import { brokerTarget, currentBroker, parseBrokerUrls, untilConnected } from './mqtt-connect.js';
import { MessageRefused, type Bus, type ConnectionListener, type MessageHandler, type PublishOptions, type SubscribeOptions, type Unsubscribe } from './bus.js';

const log = logger('bus');

export interface MqttBusOptions extends IClientOptions {
  /** How long to wait for the first CONNACK before giving up (ms). */
  connectTimeoutMs?: number;
}

interface Route {
  filters: string[];
  /** The filters as topics are matched against: a shared subscription's without its `$share/{group}/`. */
  matching: string[];
  handler: MessageHandler;
}

/** MQTT 5 SUBACK reason code: the broker has no shared subscriptions. */
const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9e;
/** CONNACK codes for "this broker does not speak that protocol version": MQTT 3.1.1's 1, MQTT 5's 0x84. */
const UNSUPPORTED_PROTOCOL_VERSION = new Set([1, 0x84]);
/** MQTT 5 Session Expiry Interval that never expires: what MQTT 3.1.1's clean: false means. */
const SESSION_NEVER_EXPIRES = 0xffffffff;

export class MqttBus implements Bus {
  handlerErrors = 0;
  /** Messages a handler refused (MessageRefused): left unacknowledged, the connection dropped so the broker redelivers them. */
  refused = 0;
  /** Messages decoded (once each, on the first handler that asked, for all of them). */
  decodes = 0;
  private readonly routes = new Set<Route>();
  private readonly connectionListeners = new Set<ConnectionListener>();
  /** What the connection listeners were last told (MQTT.js emits 'close' on every failed reconnect too). */
  private wasConnected = false;
  /** The last CONNACK: its MQTT 5 properties say what the broker offers. */
  private connack: IConnackPacket | undefined;

  /** Resolves when the first subscription is registered (see dispatch). */
  private readonly firstRoute: Promise<void>;
  private routeAdded: () => void = () => undefined;

  private constructor(readonly client: MqttClient) {
    this.firstRoute = new Promise((resolve) => (this.routeAdded = resolve));
    // MQTT.js sets `connected` before it emits 'connect' and clears it before our 'close' handler runs.
    const onConnectionEvent = (): void => this.connectionEvent();
    client.on('connect', (connack) => {
      this.connack = connack;
      onConnectionEvent();
    });
    client.on('close', onConnectionEvent);
    // Acknowledge (PUBACK/PUBCOMP) only after the handlers resolved: MQTT.js sends the ack
    // when handleMessage's callback runs. A refused message is never acknowledged: MQTT 3.1.1
    // lets a broker redeliver only on a new connection of the session, so the connection is
    // dropped (MQTT.js reconnects after reconnectPeriod) and whatever MQTT.js had read behind
    // it goes unacknowledged too; with a persistent session (clean: false) the broker sends it
    // all again.
    client.handleMessage = (packet, callback) => {
      this.dispatch(packet.topic, packet.payload as Buffer).then((accepted) => {
        if (accepted || packet.qos === 0) callback(); // QoS 0 has no acknowledgement to withhold
        else client.stream.destroy();
      }, () => callback());
    };
  }

  /**
   * Connects to `url` (mqtt://, mqtts://, ws://), or to the first broker of a list that answers
   * (`URL,URL…` or an array): when the broker goes away, MQTT.js reconnects to the next one of the
   * list (brokerTarget), on every reconnect; a persistent session (clean: false) is asked for there,
   * which only a broker sharing sessions with the last one (a cluster) has — what the broker left
   * behind had queued for it stays there. Rejects with a clear message if none answers.
   */
  static async connect(urls: string | readonly string[], options: MqttBusOptions = {}): Promise<MqttBus> {
    const { connectTimeoutMs = 10_000, ...clientOptions } = options;
    const list = parseBrokerUrls(urls, 'the broker URL');
    const { url, servers } = brokerTarget(list);
    // Without a client id, one the broker accepts for this account (docs/broker.md#client-ids).
    const clientId = clientOptions.clientId ?? (clientOptions.username ? clientIdFor(clientOptions.username, `bus-${Math.random().toString(36).slice(2, 10)}`) : undefined);
    // reconnectOnConnackError: a refusal after the first connect (e.g. CONNACK 5 from the login backoff
    // while a burst of logins is checked) is retried, not taken as final.
    // MQTT 5 ends a session when the connection closes unless it is given an expiry: a persistent
    // session (clean: false) there gets one that never expires, as in MQTT 3.1.1.
    const persistentV5 = clientOptions.protocolVersion === 5 && clientOptions.clean === false && clientOptions.properties?.sessionExpiryInterval === undefined;
    const properties = persistentV5 ? { ...clientOptions.properties, sessionExpiryInterval: SESSION_NEVER_EXPIRES } : clientOptions.properties;
    const client = mqtt.connect(url, { reconnectPeriod: 1000, reconnectOnConnackError: true, connectTimeout: connectTimeoutMs, ...clientOptions, ...(properties ? { properties } : {}), ...(servers ? { servers } : {}), ...(clientId ? { clientId } : {}) });
    // Take over message handling before the first packet can arrive: a persistent session
    // (clean: false) gets its queued messages right after CONNACK, and MQTT.js's default handler
    // would acknowledge them unhandled.
    const bus = new MqttBus(client);
    try {
      await untilConnected(client, servers ? connectTimeoutMs * list.length : connectTimeoutMs, `a CONNACK from ${list.join(' or ')}`, servers !== undefined);
    } catch (err) {
      const code = (err as { code?: number }).code;
      throw new Error(
        code === 2
          ? `the MQTT broker at ${currentBroker(client)} refused the client id "${String(clientId)}": with an account, use the username or USERNAME:suffix (docs/broker.md#client-ids)`
          : code !== undefined && UNSUPPORTED_PROTOCOL_VERSION.has(code)
            ? `the MQTT broker at ${currentBroker(client)} refused MQTT ${clientOptions.protocolVersion === 5 ? '5' : '3.1.1'} (CONNACK ${code}: unsupported protocol version)`
            : `cannot connect to the MQTT broker at ${list.join(' or ')}: ${(err as Error).message}. Check that a broker listens there (\`linewatch broker\` starts one) and that the username and password are right`,
        { cause: err },
      );
    }
    client.on('error', (err) => log.warn({ err: err.message, broker: currentBroker(client) }, 'MQTT client error'));
    bus.brokers = list;
    bus.lastBroker = currentBroker(client);
    return bus;
  }

  /** The brokers this bus may connect to, in the order it tries them. */
  brokers: readonly string[] = [];
  /** Connections taken up on another broker of the list than the one before (failovers). */
  failovers = 0;
  private lastBroker = '';

  /** The broker it is connected to (or, while disconnected, the one it tries next or last tried). */
  broker(): string {
    return currentBroker(this.client);
  }

  async publish(topic: string, payload: string | Buffer, options: PublishOptions = {}): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: options.qos ?? 0, retain: options.retain ?? false });
  }

  async subscribe(filter: string | string[], handler: MessageHandler, options: SubscribeOptions = {}): Promise<Unsubscribe> {
    const filters = Array.isArray(filter) ? filter : [filter];
    const route: Route = { filters, matching: filters.map(unsharedFilter), handler };
    this.routes.add(route);
    this.routeAdded();
    let granted: { topic: string; qos: number }[];
    try {
      granted = await this.client.subscribeAsync(filters, { qos: options.qos ?? 0 });
    } catch (err) {
      this.routes.delete(route);
      // MQTT.js rejects a SUBACK with any failure code (0x80 and up), with that code.
      const code = (err as { code?: number }).code;
      if (code === SHARED_SUBSCRIPTIONS_NOT_SUPPORTED) throw new Error(`the broker refused the shared subscription to ${filters.join(', ')}: it has no shared subscriptions (SUBACK 0x9e)`, { cause: err });
      if (code !== undefined && code >= 0x80) throw new Error(`the broker refused the subscription to ${filters.join(', ')}: this account is not allowed to read it (SUBACK ${code})`, { cause: err });
      throw err;
    }
    const refused = granted.filter((g) => g.qos >= 0x80).map((g) => g.topic);
    if (refused.length > 0) {
      this.routes.delete(route);
      throw new Error(`the broker refused the subscription to ${refused.join(', ')}: this account is not allowed to read it`);
    }
    return async () => {
      if (!this.routes.delete(route)) return;
      const stillUsed = new Set([...this.routes].flatMap((r) => r.filters));
      const unused = filters.filter((f) => !stillUsed.has(f));
      if (unused.length > 0 && this.client.connected) await this.client.unsubscribeAsync(unused);
    };
  }

  async close(): Promise<void> {
    this.routes.clear();
    await this.client.endAsync();
  }

  connected(): boolean {
    return this.client.connected;
  }

  /** MQTT 5, and the broker's CONNACK does not say Shared Subscription Available = 0 (absent means available). */
  sharedSubscriptions(): boolean {
    return this.client.options.protocolVersion === 5 && this.connack?.properties?.sharedSubscriptionAvailable !== false;
  }

  onConnectionChange(listener: ConnectionListener): () => void {
    this.connectionListeners.add(listener);
    return () => void this.connectionListeners.delete(listener);
  }

  private connectionEvent(): void {
    const connected = this.client.connected;
    if (connected === this.wasConnected) return;
    this.wasConnected = connected;
    if (connected && this.lastBroker !== '') {
      const broker = this.broker();
      if (broker !== this.lastBroker) {
        this.failovers++;
        log.warn({ from: this.lastBroker, to: broker }, 'connected to another broker of the list');
      }
      this.lastBroker = broker;
    }
    for (const listener of [...this.connectionListeners]) {
      try {
        listener(connected);
      } catch (err) {
        this.handlerErrors++;
        log.error({ err }, 'a connection listener failed');
      }
    }
  }

  /** Runs the matching handlers; false when one refused the message (MessageRefused). */
  private async dispatch(topic: string, payload: Buffer): Promise<boolean> {
    // Messages of a persistent session can arrive before the service has subscribed again: hold
    // them, unacknowledged (MQTT.js hands over one message at a time), until it has.
    if (this.routes.size === 0) await this.firstRoute;
    let accepted = true;
    let decoded: Decoded | undefined;
    const decodeOnce = (): Decoded => {
      if (!decoded) {
        decoded = decode(topic, payload);
        this.decodes++;
      }
      return decoded;
    };
    for (const route of this.routes) {
      if (!route.matching.some((f) => topicMatches(f, topic))) continue;
      try {
        await route.handler(topic, payload, decodeOnce);
      } catch (err) {
        if (err instanceof MessageRefused) {
          this.refused++;
          accepted = false;
          continue;
        }
        this.handlerErrors++;
        log.error({ err, topic }, 'a subscriber failed to handle a message; it was acknowledged anyway');
      }
    }
    return accepted;
  }
}
