// BusTransport — the simulated devices on an in-process Bus (e.g. `linewatch up` on the embedded broker).
import type { Bus, Unsubscribe } from '../../bus/index.js';
import { DELIVERY, parseTopic, topicOf, topics, type DeviceMessageKind, type DeviceType } from '../../contracts/index.js';
import { logger } from '../../lib/log.js';
import { newCounters, onCommandMessage, statusPayload, type CommandSink, type DeviceTransport } from './device-transport.js';

const log = logger('simulate');

/** Devices on an in-process Bus (no sockets, no wills): for `linewatch up` and tests. */
export class BusTransport implements DeviceTransport {
  readonly counters = newCounters();
  private unsubscribe: Unsubscribe | undefined;
  /** An in-process bus has no link to lose: its devices are connected from start to stop. */
  private started = false;

  constructor(
    private readonly bus: Bus,
    private readonly line: string,
    private readonly devices: { id: string; type: DeviceType | undefined }[],
  ) {}

  async start(onCommand: CommandSink): Promise<void> {
    const ids = new Set(this.devices.map((d) => d.id));
    this.unsubscribe = await this.bus.subscribe(`lw/${this.line}/+/cmd`, (topic, payload) => {
      const device = parseTopic(topic)?.device;
      if (device && ids.has(device)) onCommandMessage(this.counters, onCommand, topic, payload);
    });
    for (const d of this.devices) this.status(d.id, 'online', d.type);
    this.started = true;
  }

  disconnected(): string[] {
    return this.started ? [] : this.devices.map((d) => d.id);
  }

  private status(device: string, status: 'online' | 'offline', type: DeviceType | undefined): void {
    this.bus.publish(topics.status(this.line, device), statusPayload(status, type), DELIVERY.status).catch((err: unknown) => log.warn({ err }, 'status publish failed'));
  }

  send(device: string, kind: Exclude<DeviceMessageKind, 'status'>, payload: object): void {
    this.bus.publish(topicOf(kind, this.line, device), JSON.stringify(payload), DELIVERY[kind]).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'publish failed'));
    this.counters.sent++;
  }

  offline(device: string): void {
    this.status(device, 'offline', undefined);
  }

  online(device: string): void {
    this.status(device, 'online', undefined);
  }

  async stop(): Promise<void> {
    this.started = false;
    for (const d of this.devices) this.status(d.id, 'offline', d.type);
    await this.unsubscribe?.();
  }
}
