// A serial port speaking a line codec (ndjson or text): frames in → validated device messages
// out to the broker; commands from lw/{line}/{device}/cmd → frames written down the line.
import type { Bus, Unsubscribe } from '../bus/index.js';
import { DELIVERY, topicOf, topics, validatePayload, validateValue, type DeviceMessageKind } from '../contracts/index.js';
import type { Counters } from '../lib/service.js';
import { logger } from '../lib/log.js';
import { LineFramer, lineCodecs, type LineCodec } from './codecs/index.js';
import type { GatewayPort } from './config.js';
import type { Outbox } from './outbox.js';
import { SerialLink } from './serial-link.js';

const log = logger('gateway');
const DROP_LOG_WINDOW_MS = 10_000;
const DROP_LOGS_PER_WINDOW = 20;

/** Stamps a device message the way every bridge does (its delivery is contracts' DELIVERY: retained when it is state or status). */
export class DeviceStamp {
  private seq = 0;
  constructor(
    readonly line: string,
    readonly device: string,
  ) {}

  /** Fills in ts and seq when the device has no clock (text, modbus). */
  stamp(kind: DeviceMessageKind, body: Record<string, unknown>): Record<string, unknown> {
    const out = { ...body };
    if (out.ts === undefined) out.ts = Date.now();
    if (out.seq === undefined && kind !== 'status') out.seq = this.seq++;
    return out;
  }
}

export class LineBridge {
  readonly counters: Counters = { bytes_in: 0, frames: 0, forwarded: 0, commands_written: 0, commands_failed: 0, commands_expired: 0, commands_invalid: 0 };
  readonly link: SerialLink;
  private readonly codec: LineCodec;
  private readonly framer: LineFramer;
  private readonly stamp: DeviceStamp;
  private unsubscribe: Unsubscribe | undefined;
  private logWindow = { start: 0, logged: 0, suppressed: 0 };

  constructor(
    private readonly port: GatewayPort,
    private readonly bus: Bus,
    private readonly outbox: Outbox,
  ) {
    const [line, device] = port.device.split('/') as [string, string];
    this.stamp = new DeviceStamp(line, device);
    this.codec = lineCodecs[port.codec as 'ndjson' | 'text'];
    this.link = new SerialLink({ path: port.path, baudRate: port.baudRate, lock: port.lock, minDelayMs: port.reopenMinMs, maxDelayMs: port.reopenMaxMs });
    this.framer = new LineFramer(port.maxFrameBytes, (l) => this.onLine(l), (reason, bytes) => this.drop(reason, `${bytes} bytes`));
    this.link.on('data', (d) => {
      this.counters.bytes_in! += d.length;
      this.framer.push(d);
    });
    this.link.on('close', () => this.framer.reset());
  }

  async start(): Promise<void> {
    const { line, device } = this.stamp;
    this.unsubscribe = await this.bus.subscribe(topics.cmd(line, device), (_t, payload) => this.onCommand(payload), { qos: 1 });
    this.link.start();
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
    await this.link.stop();
    this.framer.reset();
  }

  private drop(reason: string, detail: string): void {
    const key = `dropped_${reason}`;
    this.counters[key] = (this.counters[key] ?? 0) + 1;
    // A noisy line must not flood the log: the first few per window, then a count.
    const now = Date.now();
    if (now - this.logWindow.start > DROP_LOG_WINDOW_MS) {
      if (this.logWindow.suppressed > 0) log.warn({ port: this.port.path, device: this.port.device, suppressed: this.logWindow.suppressed }, `${this.logWindow.suppressed} more frames dropped (see the dropped_* counters)`);
      this.logWindow = { start: now, logged: 0, suppressed: 0 };
    }
    if (this.logWindow.logged < DROP_LOGS_PER_WINDOW) {
      this.logWindow.logged++;
      log.warn({ port: this.port.path, device: this.port.device, reason, detail }, `frame dropped: ${reason}`);
    } else {
      this.logWindow.suppressed++;
    }
  }

  private onLine(raw: Buffer): void {
    this.counters.frames!++;
    const decoded = this.codec.decodeEvent(raw.toString('utf8'));
    if (!decoded.ok) return this.drop(decoded.reason, decoded.detail);
    const { kind, body } = decoded.value;
    const payload = this.stamp.stamp(kind, body);
    const valid = validateValue(kind, payload);
    if (!valid.ok) return this.drop('schema', valid.error);
    this.counters.forwarded!++;
    const { line, device } = this.stamp;
    this.outbox.send(topicOf(kind, line, device), JSON.stringify(valid.value), DELIVERY[kind].retain);
  }

  private async onCommand(payload: Buffer): Promise<void> {
    const { line, device } = this.stamp;
    const cmd = validatePayload('cmd', payload);
    if (!cmd.ok) {
      this.counters.commands_invalid!++;
      log.warn({ device: this.port.device, err: cmd.error }, 'command refused: invalid payload');
      return;
    }
    const answer = (result: 'rejected' | 'failed', reason: string): void => {
      const ack = this.stamp.stamp('ack', { id: cmd.value.id, result, reason });
      this.outbox.send(topics.ack(line, device), JSON.stringify(ack), DELIVERY.ack.retain);
    };
    if (cmd.value.expiresAt < Date.now()) {
      this.counters.commands_expired!++;
      return answer('rejected', `expired at ${new Date(cmd.value.expiresAt).toISOString()} before the gateway could send it`);
    }
    try {
      await this.link.write(this.codec.encodeCommand(cmd.value));
      this.counters.commands_written!++;
    } catch (err) {
      this.counters.commands_failed!++;
      answer('failed', `gateway could not write to ${this.port.path}: ${(err as Error).message}`);
    }
  }
}
