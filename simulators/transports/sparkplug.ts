// SparkplugEdge — the simulated line as one Sparkplug B edge node (group = the line, edge node
// `edge`, one Sparkplug device per simulated device): NBIRTH with bdSeq and a will NDEATH, a
// DBIRTH per device with aliases, DDATA by alias for its state and readings, a rebirth on a
// `Node Control/Rebirth` NCMD, and DCMD metric writes handed to the model as commands. The
// command metrics (speedSetpoint/setpoint, strategy, running, resetFault) are tags holding the
// last value the device took, so a write it accepts shows in its next DDATA (docs/sparkplug.md).
// Births and data go at QoS 0, as Sparkplug has edge nodes send them: one QoS keeps them in
// order (a QoS 1 birth could be overtaken by QoS 0 data); the will NDEATH is QoS 1.
import type { MqttClient } from 'mqtt';
import { decodeSparkplug, encodeSparkplug, type OutgoingMetric } from '../../contracts/sparkplug/codec.js';
import { parseSparkplugTopic, sparkplugTopics } from '../../contracts/sparkplug/topics.js';
import type { AckPayload, CommandPayload, DeviceMessageKind, DeviceState, DeviceType, StatePayload, TelemetryPayload } from '../../contracts/index.js';
import { logger } from '../../lib/log.js';
import { newCounters, type CommandSink, type Credentials, type DeviceTransport } from './device-transport.js';
import { connect, simulatorClientId } from './mqtt-connection.js';

const log = logger('simulate');

/** The simulated edge node's id; its account is LINE/edge (role sparkplug-edge). */
export const SIMULATED_EDGE = 'edge';
const COMMAND_EXPIRY_MS = 30_000;

interface SimDevice {
  id: string;
  type: DeviceType | undefined;
  /** metric name → { alias, type, value } */
  metrics: Map<string, { alias: number; type: string; value: number | boolean | string }>;
  /** Commands handed to the model, by id → the tag to set when it takes them. */
  writes: Map<string, { metric: string; value: number | boolean | string }>;
}

export class SparkplugEdge implements DeviceTransport {
  readonly counters = newCounters();
  private client: MqttClient | undefined;
  private bdSeq = 0;
  private seq = 0;
  private nextAlias = 1;
  private commandCount = 0;
  private readonly devices = new Map<string, SimDevice>();
  /** The devices whose DBIRTH went out in this session. */
  private readonly born = new Set<string>();
  private onCommand: CommandSink = () => undefined;

  constructor(
    private readonly url: string,
    private readonly line: string,
    devices: { id: string; type: DeviceType | undefined }[],
    private readonly snapshot: (id: string) => { state: DeviceState; reason?: string; values: Record<string, number> } | undefined,
    private readonly credentials: Credentials | undefined,
    /** The simulated clock (the line model's now): births, data and the will are stamped with it, as the plain MQTT devices stamp their payloads. */
    private readonly clock: () => number,
  ) {
    for (const device of devices) this.devices.set(device.id, { ...device, metrics: new Map(), writes: new Map() });
  }

  async start(onCommand: CommandSink): Promise<void> {
    this.onCommand = onCommand;
    const client = await connect(this.url, { clientId: simulatorClientId(this.credentials?.username, `sim-${this.line}-${SIMULATED_EDGE}`), ...this.credentials, clean: true, will: this.will() }, `simulated Sparkplug edge node ${this.line}/${SIMULATED_EDGE}`);
    this.client = client;
    this.counters.connections++;
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('connect', () => void this.onConnected(client));
    await this.onConnected(client);
  }

  private will(): { topic: string; payload: Buffer; qos: 1; retain: false } {
    return { topic: sparkplugTopics.node('NDEATH', this.line, SIMULATED_EDGE), payload: encodeSparkplug({ timestamp: this.clock(), metrics: [{ name: 'bdSeq', type: 'UInt64', value: this.bdSeq }] }), qos: 1, retain: false };
  }

  private async onConnected(client: MqttClient): Promise<void> {
    await client.subscribeAsync([`spBv1.0/${this.line}/NCMD/${SIMULATED_EDGE}/#`, `spBv1.0/${this.line}/DCMD/${SIMULATED_EDGE}/#`], { qos: 1 });
    this.publishBirths();
  }

  private publishBirths(): void {
    const client = this.client;
    if (!client?.connected) return;
    this.seq = 0;
    client.publish(sparkplugTopics.node('NBIRTH', this.line, SIMULATED_EDGE), encodeSparkplug({ timestamp: this.clock(), seq: this.seq, metrics: [{ name: 'bdSeq', type: 'UInt64', value: this.bdSeq }, { name: 'Node Control/Rebirth', type: 'Boolean', value: false }] }), { qos: 0 });
    this.born.clear();
    for (const device of this.devices.values()) this.birthDevice(device);
  }

  /** A device's DBIRTH: every metric it has, with its alias; before its first snapshot, it waits for its first message. */
  private birthDevice(device: SimDevice): boolean {
    const client = this.client;
    const snapshot = this.snapshot(device.id);
    if (!client?.connected || !snapshot) return false;
    if (!device.metrics.has('state')) this.setMetric(device, 'state', 'String', snapshot.state);
    if (!device.metrics.has('reason')) this.setMetric(device, 'reason', 'String', snapshot.reason ?? '');
    if (device.type) this.setMetric(device, 'type', 'String', device.type);
    for (const [name, value] of Object.entries(snapshot.values)) if (!device.metrics.has(name)) this.setMetric(device, name, 'Double', value);
    if (!device.metrics.has('running')) this.setMetric(device, 'running', 'Boolean', snapshot.state !== 'STOPPED');
    if (!device.metrics.has('resetFault')) this.setMetric(device, 'resetFault', 'Boolean', false);
    if (device.type === 'line-controller' && !device.metrics.has('strategy')) this.setMetric(device, 'strategy', 'String', 'max-throughput');
    const metrics: OutgoingMetric[] = [...device.metrics].map(([name, metric]) => ({ name, alias: metric.alias, type: metric.type, value: metric.value }));
    client.publish(sparkplugTopics.device('DBIRTH', this.line, SIMULATED_EDGE, device.id), encodeSparkplug({ timestamp: this.clock(), seq: this.nextSeq(), metrics }), { qos: 0 });
    this.born.add(device.id);
    return true;
  }

  private setMetric(device: SimDevice, name: string, type: string, value: number | boolean | string): void {
    const known = device.metrics.get(name);
    if (known) known.value = value;
    else device.metrics.set(name, { alias: this.nextAlias++, type, value });
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) % 256;
    return this.seq;
  }

  send(id: string, kind: Exclude<DeviceMessageKind, 'status'>, payload: object): void {
    const device = this.devices.get(id);
    if (!device) return;
    const changed: string[] = [];
    if (kind === 'state') {
      const state = payload as StatePayload;
      this.setMetric(device, 'state', 'String', state.state);
      this.setMetric(device, 'reason', 'String', state.reason ?? '');
      changed.push('state', 'reason');
      if (state.strategy) {
        this.setMetric(device, 'strategy', 'String', state.strategy);
        changed.push('strategy');
      }
    } else if (kind === 'telemetry') {
      for (const [name, value] of Object.entries((payload as TelemetryPayload).values)) {
        this.setMetric(device, name, 'Double', value);
        changed.push(name);
      }
    } else {
      // Sparkplug has no ack: a command the device took sets its tag, which the next DDATA reports.
      const ack = payload as AckPayload;
      const write = device.writes.get(ack.id);
      if (!write) return;
      device.writes.delete(ack.id);
      if (ack.result !== 'accepted' && ack.result !== 'done') return;
      this.setMetric(device, write.metric, device.metrics.get(write.metric)?.type ?? 'Double', write.value);
      changed.push(write.metric);
    }
    this.publishData(device, changed, (payload as { ts: number }).ts);
  }

  /** A DDATA of `names`, stamped `timestamp`: the model's time of the message it stands for. */
  private publishData(device: SimDevice, names: readonly string[], timestamp: number): void {
    const client = this.client;
    if (!client?.connected || names.length === 0) return;
    // Not born yet in this session: its DBIRTH carries what changed.
    if (!this.born.has(device.id)) {
      if (this.birthDevice(device)) this.counters.sent++;
      return;
    }
    const metrics: OutgoingMetric[] = names.flatMap((name) => {
      const metric = device.metrics.get(name);
      return metric ? [{ alias: metric.alias, type: metric.type, value: metric.value }] : [];
    });
    client.publish(sparkplugTopics.device('DDATA', this.line, SIMULATED_EDGE, device.id), encodeSparkplug({ timestamp, seq: this.nextSeq(), metrics }), { qos: 0 });
    this.counters.sent++;
  }

  private onMessage(topic: string, bytes: Buffer): void {
    const parsed = parseSparkplugTopic(topic);
    if (!parsed || parsed.kind === 'state') return;
    let payload;
    try {
      payload = decodeSparkplug(bytes);
    } catch (err) {
      this.counters.commands_invalid++;
      log.warn({ topic, err: (err as Error).message }, 'simulated edge node ignored a malformed command');
      return;
    }
    if (parsed.kind === 'node') {
      if (payload.metrics.some((metric) => metric.name === 'Node Control/Rebirth' && metric.value === true)) this.publishBirths();
      return;
    }
    const device = this.devices.get(parsed.device);
    if (!device) return;
    for (const metric of payload.metrics) {
      const name = metric.name ?? [...device.metrics].find(([, known]) => known.alias === metric.alias)?.[0];
      const command = name === undefined || metric.value === null ? undefined : commandFor(name, metric.value, `sp-${this.line}-${device.id}-${++this.commandCount}`);
      if (!command || name === undefined || metric.value === null) {
        this.counters.commands_invalid++;
        continue;
      }
      this.counters.commands_received++;
      device.writes.set(command.id, { metric: name, value: metric.value });
      this.onCommand(device.id, command);
    }
  }

  offline(): void {
    const client = this.client;
    if (!client) return;
    // Cut the socket without DISCONNECT: the broker publishes the NDEATH will.
    client.options.reconnectPeriod = 0;
    client.stream?.destroy();
  }

  online(): void {
    const client = this.client;
    if (!client) return;
    // A new session: a new bdSeq, in the will and the next NBIRTH.
    this.bdSeq = (this.bdSeq + 1) % 256;
    client.options.will = this.will();
    client.options.reconnectPeriod = 1000;
    client.reconnect();
  }

  disconnected(): string[] {
    return this.client?.connected ? [] : [...this.devices.keys()];
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    if (client.connected) await client.publishAsync(sparkplugTopics.node('NDEATH', this.line, SIMULATED_EDGE), this.will().payload, { qos: 1 }).catch(() => undefined);
    await client.endAsync();
  }
}

/** A metric write as the linewatch command the model takes (the reverse of sparkplug.commands' defaults). */
function commandFor(metric: string, value: number | boolean | string, id: string): CommandPayload | undefined {
  const now = Date.now();
  const base = { id, origin: 'sparkplug:dcmd', ts: now, expiresAt: now + COMMAND_EXPIRY_MS };
  if ((metric === 'speedSetpoint' || metric === 'setpoint') && typeof value === 'number') return { ...base, action: 'set_speed', params: { speed: value } };
  if (metric === 'strategy' && typeof value === 'string') return { ...base, action: 'set_strategy', params: { strategy: value } };
  if (metric === 'running' && typeof value === 'boolean') return { ...base, action: value ? 'start' : 'stop', params: {} };
  if (metric === 'resetFault' && value === true) return { ...base, action: 'reset_fault', params: {} };
  return undefined;
}
