// PerDeviceMqtt — one MQTT connection per device, its own account, a will on its status topic.
import type { MqttClient } from 'mqtt';
import { DELIVERY, topicOf, topics, type DeviceMessageKind, type DeviceType } from '../../contracts/index.js';
import { newCounters, onCommandMessage, statusPayload, type CommandSink, type Credentials, type DeviceTransport } from './device-transport.js';
import { connect, simulatorClientId } from './mqtt-connection.js';

/** One connection per device, as real smart devices have: its own account and a will. */
export class PerDeviceMqtt implements DeviceTransport {
  readonly counters = newCounters();
  private readonly clients = new Map<string, MqttClient>();

  constructor(
    private readonly url: string,
    private readonly line: string,
    private readonly devices: { id: string; type: DeviceType | undefined }[],
    private readonly credentials: (line: string, device: string) => Credentials | undefined,
  ) {}

  async start(onCommand: CommandSink): Promise<void> {
    // Connect in small batches: a burst of thousands of CONNECTs helps nobody.
    for (let i = 0; i < this.devices.length; i += 50) {
      await Promise.all(this.devices.slice(i, i + 50).map((d) => this.connectDevice(d.id, d.type, onCommand)));
    }
  }

  private async connectDevice(device: string, type: DeviceType | undefined, onCommand: CommandSink): Promise<void> {
    const status = topics.status(this.line, device);
    const credentials = this.credentials(this.line, device);
    const client = await connect(
      this.url,
      {
        clientId: simulatorClientId(credentials?.username, `sim-${this.line}-${device}`),
        ...credentials,
        will: { topic: status, payload: Buffer.from(statusPayload('offline', type)), ...DELIVERY.status },
      },
      `simulated device ${this.line}/${device}`,
    );
    this.counters.connections++;
    client.on('message', (topic, payload) => onCommandMessage(this.counters, onCommand, topic, payload));
    const announce = (): void => {
      client.publish(status, statusPayload('online', type), DELIVERY.status);
    };
    client.on('connect', announce);
    announce();
    await client.subscribeAsync(topics.cmd(this.line, device), { qos: 1 });
    this.clients.set(device, client);
  }

  send(device: string, kind: Exclude<DeviceMessageKind, 'status'>, payload: object): void {
    const client = this.clients.get(device);
    if (!client?.connected) return;
    client.publish(topicOf(kind, this.line, device), JSON.stringify(payload), DELIVERY[kind]);
    this.counters.sent++;
  }

  disconnected(): string[] {
    return this.devices.filter((d) => !this.clients.get(d.id)?.connected).map((d) => d.id);
  }

  offline(device: string): void {
    const client = this.clients.get(device);
    if (!client) return;
    // Cut the socket without DISCONNECT so the broker publishes the will, and stay away.
    client.options.reconnectPeriod = 0;
    client.stream?.destroy();
  }

  online(device: string): void {
    const client = this.clients.get(device);
    if (!client) return;
    client.options.reconnectPeriod = 1000;
    client.reconnect();
  }

  async stop(): Promise<void> {
    await Promise.all(
      [...this.clients].map(async ([device, client]) => {
        if (client.connected) await client.publishAsync(topics.status(this.line, device), statusPayload('offline', undefined), DELIVERY.status).catch(() => undefined);
        await client.endAsync();
      }),
    );
    this.clients.clear();
  }
}
