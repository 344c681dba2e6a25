// A serial port speaking a line codec (ndjson or text): frames in → validated device messages
// out to the broker; commands from lw/{line}/{device}/cmd → frames written down the line.
import type { Bus, Unsubscribe } from '../bus/index.js';
import { DELIVERY, topicOf, topics, validatePayload, validateValue } from '../contracts/index.js';
import type { Counters } from '../lib/service.js';
import { LogLimiter } from '../lib/log-limit.js';
import { logger } from '../lib/log.js';
import { LineFramer, lineCodecs, type LineCodec } from '../contracts/serial/index.js';
import { serialPath, type GatewayPort } from './config.js';
import { DeviceStamp } from './device-stamp.js';
import type { Outbox } from './outbox.js';
import type { DeviceSequence } from './sequence-store.js';
import { SerialLink } from './serial-link.js';

const log = logger('gateway');
/** Dropped frames logged per port: at most 20 per 10 s, then one line with how many more (lib/log-limit.ts). */
const DROP_LOG_LIMIT = { linesPerInterval: 20, intervalMs: 10_000 } as const;

export class LineBridge {
  readonly counters: Counters = { bytes_in: 0, frames: 0, forwarded: 0, commands_written: 0, commands_failed: 0, commands_expired: 0, commands_invalid: 0 };
  readonly link: SerialLink;
  private readonly codec: LineCodec;
  private readonly framer: LineFramer;
  private readonly stamp: DeviceStamp;
  private unsubscribe: Unsubscribe | undefined;
  private readonly dropLog: LogLimiter;
  private dropLogTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly port: GatewayPort,
    private readonly bus: Bus,
    private readonly outbox: Outbox,
    sequence: DeviceSequence,
  ) {
    const [line, device] = port.device.split('/') as [string, string];
    this.stamp = new DeviceStamp(line, device, port.type, sequence);
    this.dropLog = new LogLimiter(log.child({ port: port.path, device: port.device }), DROP_LOG_LIMIT);
    this.codec = lineCodecs[port.codec as 'ndjson' | 'text'];
    this.link = new SerialLink({ path: serialPath(port), baudRate: port.baudRate, lock: port.lock, minDelayMs: port.reopenMinMs, maxDelayMs: port.reopenMaxMs });
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
    // The summary of a burst is written within a second of its interval's end, not only at the next drop.
    clearInterval(this.dropLogTimer);
    this.dropLogTimer = setInterval(() => this.dropLog.flush(), 1000).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.dropLogTimer);
    await this.unsubscribe?.();
    await this.link.stop();
    this.framer.reset();
  }

  private drop(reason: string, detail: string): void {
    const key = `dropped_${reason}`;
    this.counters[key] = (this.counters[key] ?? 0) + 1;
    // A noisy line must not flood the log: the first few per interval, then a count.
    this.dropLog.write('warn', 'frame dropped', { reason, detail }, `frame dropped: ${reason}`);
  }

  private onLine(raw: Buffer): void {
    this.counters.frames!++;
    const decoded = this.codec.decodeEvent(raw.toString('utf8'));
    if (!decoded.ok) return this.drop(decoded.reason, decoded.detail);
    const { kind, body } = decoded.value;
    let payload: Record<string, unknown>;
    try {
      payload = this.stamp.stamp(kind, body);
    } catch (err) {
      return this.drop('seq_store', (err as Error).message);
    }
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
      let ack: Record<string, unknown>;
      try {
        ack = this.stamp.stamp('ack', { id: cmd.value.id, result, reason });
      } catch (err) {
        return this.drop('seq_store', (err as Error).message);
      }
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
