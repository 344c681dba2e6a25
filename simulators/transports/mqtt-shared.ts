// SharedMqtt — a few connections of a `gateway`-role account speaking for many devices.
import type { MqttClient } from 'mqtt';
import { DELIVERY, topicOf, topics, type DeviceMessageKind, type DeviceType } from '../../contracts/index.js';
import { newCounters, onCommandMessage, statusPayload, type CommandSink, type Credentials, type DeviceTransport } from './device-transport.js';
import { connect, simulatorClientId } from './mqtt-connection.js';

/**
 * Many devices over a few connections of one `gateway`-role account. Cheap at scale (5,000
 * devices need 5,000 sockets otherwise), but the broker sees the gateway, not the devices: no
 * per-device will (an abrupt loss is announced by an explicit offline status instead) and no
 * per-device ACL.
 */
export class SharedMqtt implements DeviceTransport {
  readonly counters = newCounters();
  private clients: MqttClient[] = [];
  private readonly index = new Map<string, number>();

  constructor(
    private readonly url: string,
    private readonly line: string,
    private readonly devices: { id: string; type: DeviceType | undefined }[],
    private readonly account: Credentials | undefined,
    private readonly connections: number,
  ) {}

  async start(onCommand: CommandSink): Promise<void> {
    const n = Math.max(1, Math.min(this.connections, this.devices.length));
    for (let i = 0; i < n; i++) {
      const client = await connect(this.url, { clientId: simulatorClientId(this.account?.username, `sim-${this.line}-shared-${i}`), ...this.account }, `simulator connection ${i}`);
      this.clients.push(client);
      this.counters.connections++;
    }
    this.devices.forEach((d, i) => this.index.set(d.id, i % n));
    // One connection takes every command for the line; more would deliver each command n times.
    const first = this.clients[0]!;
    first.on('message', (topic, payload) => onCommandMessage(this.counters, onCommand, topic, payload));
    await first.subscribeAsync(`lw/${this.line}/+/cmd`, { qos: 1 });
    for (const d of this.devices) this.clientOf(d.id).publish(topics.status(this.line, d.id), statusPayload('online', d.type), DELIVERY.status);
  }

  private clientOf(device: string): MqttClient {
    return this.clients[this.index.get(device) ?? 0]!;
  }

  send(device: string, kind: Exclude<DeviceMessageKind, 'status'>, payload: object): void {
    const client = this.clientOf(device);
    if (!client.connected) return;
    client.publish(topicOf(kind, this.line, device), JSON.stringify(payload), DELIVERY[kind]);
    this.counters.sent++;
  }

  disconnected(): string[] {
    if (this.clients.length === 0) return this.devices.map((d) => d.id);
    return this.devices.filter((d) => !this.clientOf(d.id).connected).map((d) => d.id);
  }

  offline(device: string): void {
    this.clientOf(device).publish(topics.status(this.line, device), statusPayload('offline', undefined), DELIVERY.status);
  }

  online(device: string): void {
    this.clientOf(device).publish(topics.status(this.line, device), statusPayload('online', undefined), DELIVERY.status);
  }

  async stop(): Promise<void> {
    for (const d of this.devices) {
      const c = this.clientOf(d.id);
      if (c.connected) c.publish(topics.status(this.line, d.id), statusPayload('offline', d.type), DELIVERY.status);
    }
    await Promise.all(this.clients.map((c) => c.endAsync()));
    this.clients = [];
  }
}
