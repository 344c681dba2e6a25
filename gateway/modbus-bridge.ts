// A Modbus device polled over RTU (a serial port) or TCP (modbus-serial), through a ModbusLink
// it may share with other unit ids behind the same endpoint: every pollIntervalMs the register
// map is read, published as telemetry (and state, from the state register, when it changes).
// A device that does not answer offlineAfterFailures polls in a row (timeouts, a closed port or
// connection) is reported `offline` on its status topic, `online` again at its next answer; a
// failed poll is retried after a delay doubling from reopenMinMs to reopenMaxMs.
// Commands are register writes; Modbus has no answer of its own beyond the write's
// confirmation, so the gateway acks on the device's behalf: `done` when the write was confirmed,
// `failed` when it timed out, `rejected` when the map has no register for the action.
import type { Bus, Unsubscribe } from '../bus/index.js';
import { DELIVERY, topicOf, topics, validatePayload, validateValue, type DeviceState } from '../contracts/index.js';
import { Backoff } from '../lib/backoff.js';
import { LogLimiter } from '../lib/log-limit.js';
import { logger } from '../lib/log.js';
import type { Counters } from '../lib/service.js';
import { decodeRegister, readPlan, type ModbusMap } from '../contracts/serial/index.js';
import type { GatewayPort } from './config.js';
import { DeviceStamp } from './device-stamp.js';
import type { ModbusLink } from './modbus-link.js';
import type { DeviceSequence } from './sequence-store.js';
import type { Outbox } from './outbox.js';

const log = logger('gateway');
/** Failed polls logged per device: at most 10 per minute, then one line with how many more (lib/log-limit.ts). */
const POLL_LOG_LIMIT = { linesPerInterval: 10, intervalMs: 60_000 } as const;

export class ModbusBridge {
  readonly counters: Counters = { polls: 0, poll_errors: 0, forwarded: 0, commands_written: 0, commands_failed: 0, commands_rejected: 0, devices_offline_reported: 0 };
  private readonly map: ModbusMap;
  private readonly stamp: DeviceStamp;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastState: DeviceState | undefined;
  private unsubscribe: Unsubscribe | undefined;
  private readonly retry: Backoff;
  private readonly pollLog: LogLimiter;
  private failuresInRow = 0;
  /** What the gateway last published on the device's status topic. */
  private reported: 'online' | 'offline' | undefined;
  private polling: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly port: GatewayPort,
    readonly link: ModbusLink,
    private readonly bus: Bus,
    private readonly outbox: Outbox,
    sequence: DeviceSequence,
  ) {
    if (!port.modbus) throw new Error(`gateway port of ${port.device}: codec modbus needs a register map (gatewayPortSchema checks it)`);
    this.map = port.modbus;
    const [line, device] = port.device.split('/') as [string, string];
    this.stamp = new DeviceStamp(line, device, port.type, sequence);
    this.retry = new Backoff({ initialMs: port.reopenMinMs, maxMs: port.reopenMaxMs });
    this.pollLog = new LogLimiter(log.child({ endpoint: link.endpoint, unitId: this.map.unitId, device: port.device }), POLL_LOG_LIMIT);
  }

  /** Whether its link (serial port or TCP connection) is open. */
  get isOpen(): boolean {
    return this.link.isOpen;
  }

  /** True once the device missed offlineAfterFailures polls in a row, until it answers again. */
  get offline(): boolean {
    return this.reported === 'offline';
  }

  get failedPolls(): number {
    return this.failuresInRow;
  }

  async start(): Promise<void> {
    this.stopped = false;
    const { line, device } = this.stamp;
    this.unsubscribe = await this.bus.subscribe(topics.cmd(line, device), (_t, p) => this.onCommand(p), { qos: 1 });
    this.loop(0);
  }

  /** Stops polling; the link is closed by its owner (it may serve other devices). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.unsubscribe?.();
    await this.polling;
    this.pollLog.flush();
  }

  private loop(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const poll = this.pollOnce().then((ok) => this.loop(ok ? this.map.pollIntervalMs : Math.max(this.retry.next(), this.link.retryInMs())));
      this.polling = poll;
    }, delay);
  }

  /** One poll; false when the device or its link did not answer. */
  private async pollOnce(): Promise<boolean> {
    const raw = new Map<string, number>();
    try {
      await this.link.request(this.map.unitId, this.map.timeoutMs, async (client) => {
        for (const r of readPlan(this.map)) {
          const res = r.table === 'holding' ? await client.readHoldingRegisters(r.start, r.length) : await client.readInputRegisters(r.start, r.length);
          res.data.forEach((v: number, i: number) => raw.set(`${r.table}:${r.start + i}`, v));
        }
      });
    } catch (err) {
      this.onPollFailed((err as Error).message);
      return false;
    }
    this.counters.polls!++;
    this.failuresInRow = 0;
    this.retry.reset();
    this.pollLog.flush();
    if (this.reported !== 'online') {
      if (this.reported === 'offline') log.info({ device: this.port.device, endpoint: this.link.endpoint, unitId: this.map.unitId }, 'Modbus device answers again; reported online');
      this.reported = 'online';
      this.publish('status', { status: 'online' });
    }
    const values: Record<string, number> = {};
    for (const reg of this.map.registers) values[reg.name] = decodeRegister(raw.get(`${reg.table}:${reg.address}`) ?? 0, reg);
    this.publish('telemetry', { values });
    if (this.map.stateRegister) {
      const state = this.map.stateRegister.states[raw.get(`${this.map.stateRegister.table}:${this.map.stateRegister.address}`) ?? -1];
      if (state && state !== this.lastState) {
        this.lastState = state;
        this.publish('state', { state });
      }
    }
    return true;
  }

  private onPollFailed(reason: string): void {
    this.counters.poll_errors!++;
    this.failuresInRow++;
    this.pollLog.write('warn', 'Modbus poll failed', { err: reason, failedInRow: this.failuresInRow }, 'Modbus poll failed; retrying with backoff');
    if (this.failuresInRow >= this.map.offlineAfterFailures && this.reported !== 'offline') {
      this.reported = 'offline';
      this.counters.devices_offline_reported!++;
      // Its last state is unknown now: the next answer publishes the state again.
      this.lastState = undefined;
      log.warn({ device: this.port.device, endpoint: this.link.endpoint, unitId: this.map.unitId, failedInRow: this.failuresInRow, err: reason }, 'Modbus device does not answer; reported offline');
      this.publish('status', { status: 'offline' });
    }
  }

  private publish(kind: 'telemetry' | 'state' | 'ack' | 'status', body: Record<string, unknown>): void {
    let payload: Record<string, unknown>;
    try {
      payload = this.stamp.stamp(kind, body);
    } catch (err) {
      this.counters.dropped_seq_store = (this.counters.dropped_seq_store ?? 0) + 1;
      log.error({ device: this.port.device, err: (err as Error).message }, 'Modbus reading dropped: its seq could not be reserved on disk');
      return;
    }
    const valid = validateValue(kind, payload);
    if (!valid.ok) {
      log.warn({ device: this.port.device, err: valid.error }, 'Modbus reading does not fit the contract; dropped');
      return;
    }
    this.counters.forwarded!++;
    const { line, device } = this.stamp;
    this.outbox.send(topicOf(kind, line, device), JSON.stringify(valid.value), DELIVERY[kind].retain);
  }

  private async onCommand(payload: Buffer): Promise<void> {
    const cmd = validatePayload('cmd', payload);
    if (!cmd.ok) return;
    const { id, action, params, expiresAt } = cmd.value;
    const ack = (result: 'accepted' | 'done' | 'rejected' | 'failed', reason?: string): void => this.publish('ack', { id, result, ...(reason ? { reason } : {}) });
    if (expiresAt < Date.now()) return ack('rejected', 'expired before the gateway could write it');
    let address: number;
    let value: number;
    if (action === 'set_speed') {
      const target = this.map.commands.set_speed;
      if (!target) return this.reject(ack, action);
      if (typeof params.speed !== 'number') return ack('rejected', 'set_speed needs a numeric params.speed');
      address = target.address;
      value = Math.round(params.speed * target.scale);
      if (value < 0 || value > 65_535) return ack('rejected', `speed ${params.speed} does not fit a 16-bit register at scale ${target.scale}`);
    } else if (action === 'start' || action === 'stop' || action === 'reset_fault') {
      const target = this.map.commands[action];
      if (!target) return this.reject(ack, action);
      ({ address, value } = target);
    } else {
      return this.reject(ack, action);
    }
    ack('accepted');
    try {
      await this.link.request(this.map.unitId, this.map.timeoutMs, (client) => client.writeRegister(address, value));
      this.counters.commands_written!++;
      ack('done');
    } catch (err) {
      this.counters.commands_failed!++;
      ack('failed', `Modbus write of register ${address} failed: ${(err as Error).message}`);
    }
  }

  private reject(ack: (r: 'rejected', reason: string) => void, action: string): void {
    this.counters.commands_rejected!++;
    ack('rejected', `this Modbus device's register map has no register for ${action}`);
  }
}
