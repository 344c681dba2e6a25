// The Sparkplug B 3.0 primary host application (docs/sparkplug.md).
//
//   MQTT (its own connection, will = STATE offline) ── spBv1.0/# ──► edge node and device tables
//        │                                                            │ births, data, deaths → linewatch
//        │  ◄── NCMD Node Control/Rebirth (seq gap, data before birth,  ▼ device events (the bus)
//        │       malformed, unknown alias; throttled per node)        lw/{line}/{device}/status|state|telemetry
//        │  ◄── DCMD / NCMD metric writes ◄── lw/+/+/cmd (the bus) ──► cmd/ack done when DDATA/NDATA
//                                                                    reports the written value
//
// Its Sparkplug side is a plain MQTT.js client, not a Bus: the host needs a will (its STATE death
// certificate), a clean session, and its subscriptions in order before its STATE birth on every
// connect, which a Bus does not offer. Its linewatch side is any Bus (the in-process bus in
// `linewatch up`), so rules, historian, dashboard and OEE see Sparkplug devices as any device.
import mqtt, { type MqttClient } from 'mqtt';
import type { Bus, DecodeOnce, Unsubscribe } from '../bus/bus.js';
import { untilConnected } from '../bus/mqtt-connect.js';
import { clientIdFor } from '../contracts/client-id.js';
import { DELIVERY, MAX_TIMESTAMP_MS, isValidId, topics, type AckPayload, type CommandPayload, type DeviceType, type StatePayload, type StatusPayload, type TelemetryPayload } from '../contracts/index.js';
import { logger } from '../lib/log.js';
import { LogLimiter } from '../lib/log-limit.js';
import { healthFrom, type Health, type Service } from '../lib/service.js';
import { decodeSparkplug, encodeSparkplug, isIntegerType, isNumberType, isStringType, type Metric, type Payload } from '../contracts/sparkplug/codec.js';
import type { SparkplugConfig, SparkplugDeviceMapping } from './config.js';
import { MetricTable, isControlMetric, readingsOf, sameValue, stateOf, typeOf, type MetricDefinition } from './metrics.js';
import { parseSparkplugTopic, sparkplugTopics, type DeviceMessageType, type NodeMessageType } from '../contracts/sparkplug/topics.js';
import { RawMetricsOut, type RawMetricIn } from './raw-metrics.js';

const log = logger('sparkplug');

/** The NCMD metric that asks an edge node for its births again (spec 3.0 §6.4, "Node Control/Rebirth"). */
export const REBIRTH_METRIC = 'Node Control/Rebirth';
/** Messages out of seq order kept per node while the missing ones may still come. */
const REORDER_BUFFER = 256;
/** How often commands past their expiresAt are forgotten. */
const SWEEP_MS = 1000;

export interface SparkplugHostOptions {
  /** The linewatch side: device events out, commands in. */
  bus: Bus;
  config: SparkplugConfig;
  /** The Sparkplug side: the broker the edge nodes speak to. */
  mqtt: { url: string; username?: string; password?: string };
  now?: () => number;
}

interface LinewatchDevice {
  line: string;
  device: string;
  mapping: SparkplugDeviceMapping | undefined;
}

interface DeviceEntry {
  id: string;
  online: boolean;
  metrics: MetricTable;
  target: LinewatchDevice | undefined;
  type: DeviceType | undefined;
}

interface Buffered {
  type: NodeMessageType | DeviceMessageType;
  device?: string;
  payload: Payload;
}

interface NodeEntry {
  group: string;
  edge: string;
  online: boolean;
  /** The bdSeq of its current birth: an NDEATH with another is an old session's, ignored. */
  bdSeq?: number;
  /** The seq of the last message taken in order; undefined until an NBIRTH (or after a seq gap gave up). */
  seq?: number;
  metrics?: MetricTable;
  /** The node's own metrics as a linewatch device, when it has any beside bdSeq and controls. */
  target: LinewatchDevice | undefined;
  type: DeviceType | undefined;
  devices: Map<string, DeviceEntry>;
  reorder?: { buffered: Map<number, Buffered>; timer: NodeJS.Timeout };
  lastRebirthAt?: number;
}

interface PendingWrite {
  command: CommandPayload;
  node: NodeEntry;
  /** undefined: a node metric (NCMD). */
  device: string | undefined;
  metric: string;
  type: string;
  value: number | boolean | string;
  line: string;
  target: string;
}

export type SparkplugHostCounters = ReturnType<SparkplugHost['counters']>;

export class SparkplugHost implements Service {
  readonly name = 'sparkplug';
  readonly gauges: ReadonlySet<string> = new Set(['connected', 'nodes_online', 'devices_online', 'commands_pending', 'raw_series']);
  private client: MqttClient | undefined;
  private unsubscribe: Unsubscribe | undefined;
  private sweep: NodeJS.Timeout | undefined;
  private readonly nodes = new Map<string, NodeEntry>();
  /** `line/device` → where it is on the Sparkplug side, for commands. */
  private readonly byLinewatch = new Map<string, { node: NodeEntry; device: string | undefined }>();
  private readonly lwSeq = new Map<string, number>();
  /** Per linewatch device, its last event still going out (publish keeps each device's events in order). */
  private readonly publishing = new Map<string, Promise<void>>();
  private readonly pending = new Map<string, PendingWrite>();
  private readonly limitedLog = new LogLimiter(log);
  /** undefined: sparkplug.rawMetrics off. */
  private readonly raw: RawMetricsOut | undefined;
  private readonly now: () => number;
  /** The timestamp of this connection's STATE birth, and of its will. */
  private stateTimestamp = 0;
  private birthPublished = false;
  private stopping = false;
  private readonly tally = {
    messages: 0,
    births: 0,
    device_births: 0,
    data: 0,
    deaths: 0,
    device_deaths: 0,
    stale_deaths: 0,
    malformed: 0,
    data_before_birth: 0,
    unknown_alias: 0,
    seq_reorders: 0,
    seq_duplicates: 0,
    seq_gaps: 0,
    rebirths_requested: 0,
    rebirths_throttled: 0,
    state_births: 0,
    unmappable: 0,
    invalid_state: 0,
    events_published: 0,
    publish_failures: 0,
    commands_written: 0,
    commands_confirmed: 0,
    commands_rejected: 0,
    commands_unconfirmed: 0,
  };

  constructor(private readonly options: SparkplugHostOptions) {
    this.now = options.now ?? Date.now;
    this.raw = options.config.rawMetrics ? new RawMetricsOut({ bus: options.bus, maxSeries: options.config.rawMetricsMaxSeries, limitedLog: this.limitedLog }) : undefined;
  }

  private get config(): SparkplugConfig {
    return this.options.config;
  }

  async start(): Promise<void> {
    if (this.client) return;
    const { url, username, password } = this.options.mqtt;
    this.stateTimestamp = this.now();
    const client = mqtt.connect(url, {
      clientId: clientIdFor(username ?? this.config.hostId, `sparkplug-${Math.random().toString(36).slice(2, 10)}`),
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password } : {}),
      // A host's session is clean, and it subscribes again itself on each connect, in order (below).
      clean: true,
      resubscribe: false,
      reconnectPeriod: 1000,
      reconnectOnConnackError: true,
      connectTimeout: 10_000,
      will: this.stateWill(),
    });
    this.client = client;
    client.on('connect', () => void this.onConnect(client));
    client.on('close', () => this.onClose(client));
    client.on('message', (topic, payload) => this.onSparkplugMessage(topic, payload));
    try {
      await untilConnected(client, 15_000, `the Sparkplug host to connect to ${url}`);
    } catch (err) {
      this.client = undefined;
      throw new Error(`the Sparkplug host cannot connect to the MQTT broker at ${url}: ${(err as Error).message}${username ? '' : ' (on the embedded broker it needs an account of role sparkplug named sparkplug.hostId: linewatch devices add HOST --role sparkplug)'}`, { cause: err });
    }
    client.on('error', (err) => this.limitedLog.write('warn', 'mqtt_error', { err: err.message }, 'Sparkplug MQTT client error'));
    this.unsubscribe = await this.options.bus.subscribe(topics.cmd('+', '+'), this.onCommand, { qos: 1 });
    this.sweep = setInterval(() => this.forgetExpired(), SWEEP_MS);
    this.sweep.unref();
    log.info({ hostId: this.config.hostId, url }, 'Sparkplug primary host started');
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.birthPublished = false; // its own STATE death, echoed back, is not to be answered
    clearInterval(this.sweep);
    for (const node of this.nodes.values()) this.dropReorder(node);
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = undefined;
    await unsubscribe?.().catch((err: unknown) => log.warn({ err }, 'unsubscribe failed'));
    const client = this.client;
    if (client) {
      // A host going away on purpose publishes its STATE death itself before it disconnects (tck-id-operational-behavior-host-application-termination).
      // Its timestamp is the time it stops (tck-id-host-topic-phid-death-payload-timestamp-disconnect-clean), never before its birth's.
      if (client.connected) await client.publishAsync(sparkplugTopics.state(this.config.hostId), JSON.stringify({ online: false, timestamp: Math.max(this.now(), this.stateTimestamp) }), { qos: 1, retain: true }).catch(() => undefined);
      await client.endAsync().catch(() => undefined);
    }
    this.limitedLog.flush();
  }

  counters() {
    let devicesOnline = 0;
    let nodesOnline = 0;
    for (const node of this.nodes.values()) {
      if (node.online) nodesOnline++;
      for (const device of node.devices.values()) if (device.online) devicesOnline++;
    }
    const raw = this.raw?.counters ?? { raw_messages_published: 0, raw_metrics_published: 0, raw_metrics_dropped: 0, raw_publish_failures: 0 };
    return { ...this.tally, ...raw, connected: this.client?.connected ? 1 : 0, nodes_online: nodesOnline, devices_online: devicesOnline, commands_pending: this.pending.size, raw_series: this.raw?.seriesCount ?? 0 };
  }

  health(): Health {
    return healthFrom([
      { failed: !this.client, status: 'down', reason: 'not started' },
      { failed: this.client !== undefined && !this.client.connected, status: 'down', reason: `not connected to the Sparkplug broker ${this.options.mqtt.url} (it reconnects by itself)` },
      { failed: this.client !== undefined && !this.options.bus.connected(), status: 'down', reason: 'not connected to the linewatch broker: Sparkplug devices reach nobody' },
    ]);
  }

  info() {
    return { host_id: this.config.hostId };
  }

  /** What the host knows of an edge node now (tests, the curious). */
  node(group: string, edge: string): { online: boolean; bdSeq?: number; devices: Record<string, { online: boolean; metrics: MetricDefinition[] }> } | undefined {
    const node = this.nodes.get(`${group}/${edge}`);
    if (!node) return undefined;
    const devices = Object.fromEntries([...node.devices].map(([id, device]) => [id, { online: device.online, metrics: [...device.metrics.all()] }]));
    return { online: node.online, ...(node.bdSeq !== undefined ? { bdSeq: node.bdSeq } : {}), devices };
  }

  // --- STATE (spec 3.0 §7: the host's birth and death certificates) -----------------------------

  private statePayload(online: boolean): string {
    return JSON.stringify({ online, timestamp: this.stateTimestamp });
  }

  private stateWill(): mqtt.IClientOptions['will'] {
    return { topic: sparkplugTopics.state(this.config.hostId), payload: Buffer.from(this.statePayload(false)), qos: 1, retain: true };
  }

  /** On every connect: its own STATE topic, then spBv1.0/#, then the retained STATE birth, in that order. */
  private async onConnect(client: MqttClient): Promise<void> {
    this.birthPublished = false;
    try {
      await client.subscribeAsync(sparkplugTopics.state(this.config.hostId), { qos: 1 });
      await client.subscribeAsync(sparkplugTopics.all, { qos: 1 });
      await this.publishStateBirth(client);
    } catch (err) {
      this.limitedLog.write('warn', 'state_birth', { err: (err as Error).message }, `could not subscribe or publish the STATE birth: ${(err as Error).message}; it tries again on the next connect`);
    }
  }

  /**
   * The STATE birth. `birthPublished` is set as it is handed to the client, before its PUBACK: the
   * client writes in publish order, so what the host publishes from then on (a rebirth request, a
   * command) goes out after it — the birth is its first message (tck-id-host-topic-phid-birth-message).
   */
  private async publishStateBirth(client: MqttClient): Promise<void> {
    const published = client.publishAsync(sparkplugTopics.state(this.config.hostId), this.statePayload(true), { qos: 1, retain: true });
    this.birthPublished = true;
    try {
      await published;
    } catch (err) {
      this.birthPublished = false;
      throw err;
    }
    this.tally.state_births++;
  }

  /** The next connection's will and birth carry a new timestamp (its birth's and its will's are the same one). */
  private onClose(client: MqttClient): void {
    this.birthPublished = false;
    if (this.stopping) return;
    this.stateTimestamp = Math.max(this.now(), this.stateTimestamp + 1);
    // MQTT.js sends `options.will` with each CONNECT it makes, reconnects included; guarded, so
    // a version that keeps it elsewhere fails here rather than sending an old will.
    if (!client.options || typeof client.options !== 'object' || !client.options.will) throw new Error('mqtt: client.options.will is gone; sparkplug/host.ts sets the STATE will there before each reconnect');
    client.options.will = this.stateWill();
  }

  // --- Sparkplug messages in ----------------------------------------------------------------------

  private onSparkplugMessage(topic: string, bytes: Buffer): void {
    this.tally.messages++;
    const parsed = parseSparkplugTopic(topic);
    if (!parsed) return; // another namespace version or a topic the spec does not have: not ours
    if (parsed.kind === 'state') {
      if (parsed.hostId === this.config.hostId) this.onOwnState(bytes);
      return;
    }
    if (parsed.type === 'NCMD' || parsed.type === 'DCMD') return; // commands: ours or another host's
    const node = this.nodeOf(parsed.group, parsed.edge);
    let payload: Payload;
    try {
      payload = decodeSparkplug(bytes);
    } catch (err) {
      return this.malformed(node, topic, (err as Error).message);
    }
    if (parsed.type === 'NBIRTH') return this.onNodeBirth(node, payload, topic);
    if (parsed.type === 'NDEATH') return this.onNodeDeath(node, payload, topic);
    if (node.seq === undefined || !node.online) {
      this.tally.data_before_birth++;
      this.limitedLog.write('info', 'data_before_birth', { topic }, `${parsed.type} from ${node.group}/${node.edge} before its NBIRTH; requesting a rebirth`);
      return this.requestRebirth(node);
    }
    if (payload.seq === undefined || payload.seq < 0 || payload.seq > 255) return this.malformed(node, topic, `seq ${String(payload.seq)} is not 0–255`);
    this.inOrder(node, { type: parsed.type, ...(parsed.kind === 'device' ? { device: parsed.device } : {}), payload });
  }

  private onOwnState(bytes: Buffer): void {
    let online: unknown;
    try {
      online = (JSON.parse(bytes.toString('utf8')) as { online?: unknown }).online;
    } catch {
      online = undefined;
    }
    // Someone (an old session's will, delivered late) says this host is offline while it is
    // online: it says otherwise at once, as the spec has a host do.
    const client = this.client;
    if (online !== true && this.birthPublished && !this.stopping && client?.connected) {
      void this.publishStateBirth(client).catch((err: unknown) => this.limitedLog.write('warn', 'state_birth', { err: (err as Error).message }, 'could not publish the STATE birth again'));
    }
  }

  private nodeOf(group: string, edge: string): NodeEntry {
    const key = `${group}/${edge}`;
    let node = this.nodes.get(key);
    if (!node) {
      node = { group, edge, online: false, target: undefined, type: undefined, devices: new Map() };
      this.nodes.set(key, node);
    }
    return node;
  }

  private malformed(node: NodeEntry, topic: string, why: string): void {
    this.tally.malformed++;
    this.limitedLog.write('warn', 'malformed', { topic, why }, `refused a malformed Sparkplug message on ${topic}: ${why}; requesting a rebirth`);
    this.requestRebirth(node);
  }

  /** seq 0–255, +1 per message of the node after its NBIRTH (spec 3.0 §6.4): out of order ones wait reorderTimeoutMs for the missing ones. */
  private inOrder(node: NodeEntry, message: Buffered): void {
    const seq = message.payload.seq!;
    const expected = ((node.seq ?? 0) + 1) % 256;
    if (seq === expected) {
      node.seq = seq;
      this.take(node, message);
      this.drainReorder(node);
      return;
    }
    const reorder = node.reorder ?? this.startReorder(node);
    if (reorder.buffered.has(seq) || seq === node.seq) {
      this.tally.seq_duplicates++;
      return;
    }
    if (reorder.buffered.size >= REORDER_BUFFER) return this.seqGap(node, `more than ${REORDER_BUFFER} messages out of order`);
    reorder.buffered.set(seq, message);
    this.tally.seq_reorders++;
  }

  private startReorder(node: NodeEntry): NonNullable<NodeEntry['reorder']> {
    const timer = setTimeout(() => this.seqGap(node, `seq ${((node.seq ?? 0) + 1) % 256} did not arrive within ${this.config.reorderTimeoutMs} ms (sparkplug.reorderTimeoutMs)`), this.config.reorderTimeoutMs);
    timer.unref();
    node.reorder = { buffered: new Map(), timer };
    return node.reorder;
  }

  private drainReorder(node: NodeEntry): void {
    const reorder = node.reorder;
    if (!reorder) return;
    for (;;) {
      const next = ((node.seq ?? 0) + 1) % 256;
      const message = reorder.buffered.get(next);
      if (!message) break;
      reorder.buffered.delete(next);
      node.seq = next;
      this.take(node, message);
    }
    // take() may have ended the session (a rebirth request); only a reorder still in place is ours.
    if (node.reorder === reorder && reorder.buffered.size === 0) this.dropReorder(node);
  }

  private dropReorder(node: NodeEntry): void {
    if (!node.reorder) return;
    clearTimeout(node.reorder.timer);
    node.reorder = undefined;
  }

  /** A seq that never came: what followed it cannot be trusted; the node is asked for its births again. */
  private seqGap(node: NodeEntry, why: string): void {
    this.dropReorder(node);
    this.tally.seq_gaps++;
    node.seq = undefined;
    this.limitedLog.write('warn', 'seq_gap', { node: `${node.group}/${node.edge}` }, `edge node ${node.group}/${node.edge}: ${why}; requesting a rebirth`);
    this.requestRebirth(node);
  }

  private requestRebirth(node: NodeEntry): void {
    const now = this.now();
    if (node.lastRebirthAt !== undefined && now - node.lastRebirthAt < this.config.rebirthThrottleMs) {
      this.tally.rebirths_throttled++;
      return;
    }
    const client = this.client;
    // Not before this connection's STATE birth: the node's next message asks again.
    if (!client?.connected || !this.birthPublished) return;
    node.lastRebirthAt = now;
    this.tally.rebirths_requested++;
    const payload = encodeSparkplug({ timestamp: now, metrics: [{ name: REBIRTH_METRIC, type: 'Boolean', value: true }] });
    client.publish(sparkplugTopics.node('NCMD', node.group, node.edge), payload, { qos: 0 });
  }

  private take(node: NodeEntry, message: Buffered): void {
    switch (message.type) {
      case 'DBIRTH':
        return this.onDeviceBirth(node, message.device!, message.payload);
      case 'DDATA':
        return this.onDeviceData(node, message.device!, message.payload);
      case 'DDEATH':
        return this.onDeviceDeath(node, message.device!, message.payload);
      case 'NDATA':
        return this.onNodeData(node, message.payload);
      default:
        return;
    }
  }

  private onNodeBirth(node: NodeEntry, payload: Payload, topic: string): void {
    const bdSeq = payload.metrics.find((metric) => metric.name === 'bdSeq')?.value;
    if (typeof bdSeq !== 'number') return this.malformed(node, topic, 'NBIRTH has no numeric bdSeq metric');
    if (payload.seq === undefined || payload.seq < 0 || payload.seq > 255) return this.malformed(node, topic, `NBIRTH seq ${String(payload.seq)} is not 0–255`);
    let table: MetricTable;
    try {
      table = new MetricTable(payload.metrics);
    } catch (err) {
      return this.malformed(node, topic, (err as Error).message);
    }
    this.tally.births++;
    this.dropReorder(node);
    node.online = true;
    node.bdSeq = bdSeq;
    node.seq = payload.seq;
    node.metrics = table;
    // Its devices are born again after it (DBIRTH); until then their metrics are stale.
    for (const device of node.devices.values()) device.metrics.markStale();
    this.publishRaw(node, undefined, 'NBIRTH', payload, table);
    const own = [...table.all()].filter((definition) => !isControlMetric(definition.name));
    if (own.length > 0) {
      const mapping = this.config.devices[`${node.group}/${node.edge}`];
      node.target = this.targetOf(node.group, node.edge, mapping);
      node.type = typeOf(table, mapping);
      if (node.target) {
        this.byLinewatch.set(`${node.target.line}/${node.target.device}`, { node, device: undefined });
        this.publishBirth(node.target, node.type, table, payload.timestamp);
      }
    }
  }

  private onNodeDeath(node: NodeEntry, payload: Payload, topic: string): void {
    const bdSeq = payload.metrics.find((metric) => metric.name === 'bdSeq')?.value;
    if (typeof bdSeq !== 'number') return this.malformed(node, topic, 'NDEATH has no numeric bdSeq metric');
    if (!node.online || bdSeq !== node.bdSeq) {
      // The death of a session that is not the current one (a will delivered after the node came back).
      this.tally.stale_deaths++;
      return;
    }
    this.tally.deaths++;
    this.dropReorder(node);
    node.online = false;
    node.seq = undefined;
    // The host's own time (tck-id-operational-behavior-edge-node-termination-host-action-ndeath-node-offline and the
    // -ndeath-*-stale ones): an NDEATH is the will registered at connect, so its timestamp, if any, is older than the birth it ends.
    const ts = this.now();
    node.metrics?.markStale();
    if (node.metrics) this.publishRawDeath(node, undefined, 'NDEATH', ts, undefined, node.metrics);
    if (node.target) this.publishStatus(node.target, node.type, 'offline', ts);
    for (const device of node.devices.values()) {
      if (!device.online) continue;
      device.online = false;
      device.metrics.markStale();
      this.publishRawDeath(node, device.id, 'NDEATH', ts, undefined, device.metrics);
      if (device.target) this.publishStatus(device.target, device.type, 'offline', ts);
    }
  }

  private onNodeData(node: NodeEntry, payload: Payload): void {
    if (!node.metrics) return;
    this.tally.data++;
    const changed = this.apply(node, node.metrics, payload.metrics, `${node.group}/${node.edge}`);
    this.publishRaw(node, undefined, 'NDATA', payload, node.metrics);
    if (!changed || !node.target) return;
    // The ack first: a sender that compares what the device reports with what it acknowledged (the rules engine) has it before the report.
    this.confirm(node, undefined, changed, this.timestampOf(payload));
    this.publishData(node.target, node.type, node.metrics, changed, payload.timestamp);
  }

  private onDeviceBirth(node: NodeEntry, id: string, payload: Payload): void {
    let table: MetricTable;
    try {
      table = new MetricTable(payload.metrics);
    } catch (err) {
      return this.malformed(node, `DBIRTH ${node.group}/${node.edge}/${id}`, (err as Error).message);
    }
    this.tally.device_births++;
    const mapping = this.config.devices[`${node.group}/${node.edge}/${id}`];
    const target = this.targetOf(node.group, id, mapping);
    const device: DeviceEntry = { id, online: true, metrics: table, target, type: typeOf(table, mapping) };
    node.devices.set(id, device);
    this.publishRaw(node, id, 'DBIRTH', payload, table);
    if (!target) return;
    this.byLinewatch.set(`${target.line}/${target.device}`, { node, device: id });
    this.publishBirth(target, device.type, table, payload.timestamp);
  }

  private onDeviceData(node: NodeEntry, id: string, payload: Payload): void {
    const device = node.devices.get(id);
    if (!device?.online) {
      this.tally.data_before_birth++;
      this.limitedLog.write('info', 'data_before_birth', { device: `${node.group}/${node.edge}/${id}` }, `DDATA from ${node.group}/${node.edge}/${id} before its DBIRTH; requesting a rebirth`);
      return this.requestRebirth(node);
    }
    this.tally.data++;
    const changed = this.apply(node, device.metrics, payload.metrics, `${node.group}/${node.edge}/${id}`);
    this.publishRaw(node, id, 'DDATA', payload, device.metrics);
    if (!changed || !device.target) return;
    // The ack first: a sender that compares what the device reports with what it acknowledged (the rules engine) has it before the report.
    this.confirm(node, id, changed, this.timestampOf(payload));
    this.publishData(device.target, device.type, device.metrics, changed, payload.timestamp);
  }

  private onDeviceDeath(node: NodeEntry, id: string, payload: Payload): void {
    const device = node.devices.get(id);
    if (!device?.online) return;
    this.tally.device_deaths++;
    device.online = false;
    device.metrics.markStale();
    const ts = this.timestampOf(payload);
    this.publishRawDeath(node, id, 'DDEATH', ts, payload.seq, device.metrics);
    if (device.target) this.publishStatus(device.target, device.type, 'offline', ts);
  }

  // --- raw metrics out (sparkplug/raw-metrics.ts: lw/_sparkplug/… for the historian) ---------------

  /** A birth's or data's metrics as they came, each named and typed by its definition in `table` (an unknown one is left out: a rebirth is asked for). */
  private publishRaw(node: NodeEntry, device: string | undefined, message: 'NBIRTH' | 'NDATA' | 'DBIRTH' | 'DDATA', payload: Payload, table: MetricTable): void {
    if (!this.raw) return;
    const metrics: RawMetricIn[] = [];
    for (const metric of payload.metrics) {
      const definition = table.resolve(metric);
      if (!definition) continue;
      metrics.push({ name: definition.name, ...(definition.alias !== undefined ? { alias: definition.alias } : {}), type: definition.type, value: metric.value, ...(metric.timestamp !== undefined ? { timestamp: metric.timestamp } : {}), stale: false });
    }
    this.raw.publish(this.rawSource(node, device), { message, ts: this.timestampOf(payload), ...(payload.seq !== undefined ? { seq: payload.seq } : {}), online: true }, metrics);
  }

  /** A death: every metric of the table stale, without a value (the last one stored stays the last). */
  private publishRawDeath(node: NodeEntry, device: string | undefined, message: 'NDEATH' | 'DDEATH', ts: number, seq: number | undefined, table: MetricTable): void {
    if (!this.raw) return;
    const metrics: RawMetricIn[] = [...table.all()].map((definition) => ({ name: definition.name, ...(definition.alias !== undefined ? { alias: definition.alias } : {}), type: definition.type, value: null, stale: true }));
    this.raw.publish(this.rawSource(node, device), { message, ts, ...(seq !== undefined && seq >= 0 && seq <= 255 ? { seq } : {}), online: false }, metrics);
  }

  private rawSource(node: NodeEntry, device: string | undefined): { group: string; edge: string; device?: string } {
    return { group: node.group, edge: node.edge, ...(device !== undefined ? { device } : {}) };
  }

  /** Updates the table from data metrics (by alias, else name); an unknown one asks for a rebirth. Returns the metrics that came, or undefined when none did. */
  private apply(node: NodeEntry, table: MetricTable, metrics: readonly Metric[], what: string): MetricDefinition[] | undefined {
    const changed: MetricDefinition[] = [];
    let unknown = 0;
    for (const metric of metrics) {
      const definition = table.resolve(metric);
      if (!definition) {
        unknown++;
        continue;
      }
      definition.value = metric.value;
      definition.stale = false;
      changed.push(definition);
    }
    if (unknown > 0) {
      this.tally.unknown_alias++;
      this.limitedLog.write('warn', 'unknown_alias', { what }, `${what}: ${unknown} metric(s) with an alias or name its birth did not define; requesting a rebirth`);
      this.requestRebirth(node);
    }
    return changed.length > 0 ? changed : undefined;
  }

  // --- linewatch device events out ----------------------------------------------------------------

  private targetOf(line: string, device: string, mapping: SparkplugDeviceMapping | undefined): LinewatchDevice | undefined {
    const target = { line: mapping?.line ?? line, device: mapping?.device ?? device, mapping };
    if (isValidId(target.line) && isValidId(target.device)) return target;
    this.tally.unmappable++;
    this.limitedLog.write('warn', 'unmappable', { line: target.line, device: target.device }, `Sparkplug ${line}/${device} is not a linewatch line/device id (1–64 of A–Z a–z 0–9 _ -); give it one in sparkplug.devices`);
    return undefined;
  }

  private timestampOf(payload: Payload): number {
    const ts = payload.timestamp;
    return ts !== undefined && ts >= 0 && ts <= MAX_TIMESTAMP_MS ? ts : this.now();
  }

  private nextSeq(target: LinewatchDevice): number {
    const key = `${target.line}/${target.device}`;
    const seq = this.lwSeq.get(key) ?? 0;
    this.lwSeq.set(key, seq + 1);
    return seq;
  }

  private publishBirth(target: LinewatchDevice, type: DeviceType | undefined, table: MetricTable, timestamp: number | undefined): void {
    const ts = timestamp !== undefined && timestamp <= MAX_TIMESTAMP_MS ? timestamp : this.now();
    this.publishStatus(target, type, 'online', ts);
    this.publishData(target, type, table, [...table.all()], ts);
  }

  private publishData(target: LinewatchDevice, type: DeviceType | undefined, table: MetricTable, changed: readonly MetricDefinition[], timestamp: number | undefined): void {
    const ts = timestamp !== undefined && timestamp <= MAX_TIMESTAMP_MS ? timestamp : this.now();
    const names = { state: this.config.stateMetric };
    if (changed.some((definition) => definition.name === names.state || definition.name === 'reason' || definition.name === 'strategy')) {
      const state = stateOf(table, names);
      if (typeof state === 'string') {
        this.tally.invalid_state++;
        this.limitedLog.write('warn', 'invalid_state', { device: `${target.line}/${target.device}` }, `${target.line}/${target.device}: ${state}; no state published`);
      } else if (state) {
        const payload: StatePayload = { ts, seq: this.nextSeq(target), ...state, ...(type ? { type } : {}) };
        this.publish(target, topics.state(target.line, target.device), payload, DELIVERY.state);
      }
    }
    const values = readingsOf(changed, target.mapping, names);
    if (Object.keys(values).length === 0) return;
    const payload: TelemetryPayload = { ts, seq: this.nextSeq(target), values, ...(type ? { type } : {}) };
    this.publish(target, topics.telemetry(target.line, target.device), payload, DELIVERY.telemetry);
  }

  private publishStatus(target: LinewatchDevice, type: DeviceType | undefined, status: 'online' | 'offline', ts: number): void {
    const payload: StatusPayload = { ts, seq: this.nextSeq(target), status, ...(type ? { type } : {}) };
    this.publish(target, topics.status(target.line, target.device), payload, DELIVERY.status);
  }

  /**
   * Publishes one event of a linewatch device, after the ones before it of the same device have
   * gone out: the bus keeps the order of one QoS, not across QoS 0 telemetry and QoS 1 state, status
   * and acks, and a subscriber must see a device's ack before the report that confirmed it (the
   * rules engine re-commands a setpoint reported other than the acknowledged one).
   */
  private publish(target: { line: string; device: string }, topic: string, payload: object, delivery: { qos: 0 | 1; retain: boolean }): void {
    const key = `${target.line}/${target.device}`;
    const body = JSON.stringify(payload);
    const previous = this.publishing.get(key) ?? Promise.resolve();
    const next = previous.then(() => this.options.bus.publish(topic, body, delivery)).then(
      () => {
        this.tally.events_published++;
      },
      (err: unknown) => {
        this.tally.publish_failures++;
        this.limitedLog.write('warn', 'publish', { topic }, `could not publish ${topic}: ${(err as Error).message}`);
      },
    );
    this.publishing.set(key, next);
    void next.then(() => {
      if (this.publishing.get(key) === next) this.publishing.delete(key);
    });
  }

  // --- commands: linewatch cmd → DCMD/NCMD metric write → done when the device reports it ---------

  private readonly onCommand = (topic: string, _payload: Buffer, decoded: DecodeOnce): void => {
    const result = decoded();
    if (!result.ok || result.message.kind !== 'cmd') return; // invalid commands are the broker's and the sender's business
    const { line, device: target, payload: command } = result.message;
    const where = this.byLinewatch.get(`${line}/${target}`);
    if (!where) return; // not a Sparkplug device
    if (command.expiresAt < this.now()) return; // the sender records it expired
    const known = this.pending.get(command.id);
    if (known) return this.write(known); // a retry (same id): the write again, at-least-once
    const { node, device } = where;
    const entry = device === undefined ? undefined : node.devices.get(device);
    const table = device === undefined ? node.metrics : entry?.metrics;
    const online = device === undefined ? node.online : node.online && entry?.online === true;
    const reject = (reason: string): void => {
      this.tally.commands_rejected++;
      this.ack(line, target, command.id, 'rejected', reason);
    };
    if (!online || !table) return reject(`the Sparkplug ${device === undefined ? 'edge node' : 'device'} ${node.group}/${node.edge}${device === undefined ? '' : `/${device}`} is offline`);
    const mapping = this.config.commands[command.action];
    if (!mapping) return reject(`no Sparkplug metric is mapped for ${command.action} (sparkplug.commands.${command.action})`);
    const definition = mapping.metrics.map((name) => table.get(name)).find((found) => found !== undefined);
    if (!definition) return reject(`its birth defines none of the metrics sparkplug.commands.${command.action} writes (${mapping.metrics.join(', ')})`);
    const raw = mapping.param !== undefined ? command.params[mapping.param] : mapping.value;
    const value = writeValue(definition.type, raw);
    if (typeof value === 'object') return reject(`${command.action}: ${value.problem} for metric ${definition.name} (${definition.type})`);
    const write: PendingWrite = { command, node, device, metric: definition.name, type: definition.type, value, line, target };
    this.pending.set(command.id, write);
    this.write(write);
  };

  private write(write: PendingWrite): void {
    const client = this.client;
    if (!client?.connected || !this.birthPublished) return; // the sender retries; else it expires
    const definition = (write.device === undefined ? write.node.metrics : write.node.devices.get(write.device)?.metrics)?.get(write.metric);
    // By its alias alone when the birth gave it one (tck-id-payloads-alias-data-cmd-requirement), else by name. The
    // datatype goes too (the spec says it should not, tck-id-payloads-metric-datatype-not-req): the protobuf codec needs
    // it to put the value in the right field.
    const metric = { ...(definition?.alias !== undefined ? { alias: definition.alias } : { name: write.metric }), type: write.type, value: write.value };
    const payload = encodeSparkplug({ timestamp: this.now(), metrics: [metric] });
    const topic = write.device === undefined ? sparkplugTopics.node('NCMD', write.node.group, write.node.edge) : sparkplugTopics.device('DCMD', write.node.group, write.node.edge, write.device);
    client.publish(topic, payload, { qos: 0 });
    this.tally.commands_written++;
  }

  /** Writes to this node/device whose metric now reports the written value are done, acked at `ts`: the device's time of that report. */
  private confirm(node: NodeEntry, device: string | undefined, changed: readonly MetricDefinition[], ts: number): void {
    for (const [id, write] of this.pending) {
      if (write.node !== node || write.device !== device) continue;
      const reported = changed.find((definition) => definition.name === write.metric);
      if (!reported || !sameValue(write.type, write.value, reported.value)) continue;
      this.pending.delete(id);
      this.tally.commands_confirmed++;
      this.ack(write.line, write.target, id, 'done', undefined, ts);
    }
  }

  /** A write never confirmed by its expiresAt is forgotten: its sender records it expired. */
  private forgetExpired(): void {
    const now = this.now();
    for (const [id, write] of this.pending) {
      if (write.command.expiresAt >= now) continue;
      this.pending.delete(id);
      this.tally.commands_unconfirmed++;
    }
  }

  /** An ack on the device's behalf; `ts`: the device's time of the report that confirmed it, else the host's now. */
  private ack(line: string, target: string, id: string, result: AckPayload['result'], reason?: string, ts = this.now()): void {
    const payload: AckPayload = { id, result, ts, ...(reason ? { reason: reason.slice(0, 256) } : {}) };
    this.publish({ line, device: target }, topics.ack(line, target), payload, DELIVERY.ack);
  }
}

/** A command's value as the metric's datatype takes it, or what is wrong with it. */
export function writeValue(type: string, raw: unknown): number | boolean | string | { problem: string } {
  if (raw === undefined) return { problem: 'the command has no value to write (sparkplug.commands: param)' };
  if (type === 'Boolean') return typeof raw === 'boolean' ? raw : { problem: `${JSON.stringify(raw)} is not a boolean` };
  if (isStringType(type)) return typeof raw === 'string' ? raw : { problem: `${JSON.stringify(raw)} is not a string` };
  if (isNumberType(type)) {
    if (typeof raw !== 'number' || !Number.isFinite(raw)) return { problem: `${JSON.stringify(raw)} is not a number` };
    if (isIntegerType(type) && !Number.isSafeInteger(raw)) return { problem: `${raw} is not an integer` };
    return raw;
  }
  return { problem: `datatype ${type} cannot be written by a command` };
}
