// A serial port polled over Modbus RTU (modbus-serial): every pollIntervalMs the register map is
// read, published as telemetry (and state, from the state register, when it changes).
// Commands are register writes; Modbus has no answer of its own beyond the write's
// confirmation, so the gateway acks on the device's behalf: `done` when the write was confirmed,
// `failed` when it timed out, `rejected` when the map has no register for the action.
import modbusSerial from 'modbus-serial';
import type { Bus, Unsubscribe } from '../bus/index.js';
import { DELIVERY, topicOf, topics, validatePayload, validateValue, type DeviceState } from '../contracts/index.js';
import { Backoff } from '../lib/backoff.js';
import { logger } from '../lib/log.js';
import type { Counters } from '../lib/service.js';
import { decodeRegister, readPlan, type ModbusMap } from '../contracts/serial/index.js';
import type { GatewayPort } from './config.js';
import { DeviceStamp } from './device-stamp.js';
import type { DeviceSequence } from './sequence-store.js';
import type { Outbox } from './outbox.js';

const log = logger('gateway');

// modbus-serial is CommonJS: its typings put the client class on `.default` (also set at runtime).
const ModbusRTU = modbusSerial.default;
type ModbusRTU = InstanceType<typeof ModbusRTU>;

export class ModbusBridge {
  readonly counters: Counters = { polls: 0, poll_errors: 0, forwarded: 0, commands_written: 0, commands_failed: 0, commands_rejected: 0, reconnects: 0 };
  private client: ModbusRTU | undefined;
  private readonly map: ModbusMap;
  private readonly stamp: DeviceStamp;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastState: DeviceState | undefined;
  private unsubscribe: Unsubscribe | undefined;
  /** Modbus RTU is one request at a time: polls and writes take turns on this chain. */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly reopen: Backoff;

  constructor(
    private readonly port: GatewayPort,
    private readonly bus: Bus,
    private readonly outbox: Outbox,
    sequence: DeviceSequence,
  ) {
    this.map = port.modbus!;
    const [line, device] = port.device.split('/') as [string, string];
    this.stamp = new DeviceStamp(line, device, port.type, sequence);
    this.reopen = new Backoff({ initialMs: port.reopenMinMs, maxMs: port.reopenMaxMs });
  }

  get isOpen(): boolean {
    return this.client?.isOpen ?? false;
  }

  async start(): Promise<void> {
    this.stopped = false;
    const { line, device } = this.stamp;
    this.unsubscribe = await this.bus.subscribe(topics.cmd(line, device), (_t, p) => this.onCommand(p), { qos: 1 });
    this.loop(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.unsubscribe?.();
    await this.chain;
    await this.disconnect();
  }

  private loop(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.turn(() => this.pollOnce()).then((ok) => this.loop(ok ? this.map.pollIntervalMs : this.reopen.next()));
    }, delay);
  }

  private turn<T>(op: () => Promise<T>): Promise<T> {
    const next = this.chain.then(op, op);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async connect(): Promise<ModbusRTU> {
    if (this.client?.isOpen) return this.client;
    await this.disconnect();
    const client = new ModbusRTU();
    await client.connectRTUBuffered(this.port.path, { baudRate: this.port.baudRate, lock: this.port.lock, hupcl: false } as never);
    client.setID(this.map.unitId);
    client.setTimeout(this.map.timeoutMs);
    if (this.counters.polls! > 0) this.counters.reconnects!++;
    this.client = client;
    this.reopen.reset();
    log.info({ path: this.port.path, unitId: this.map.unitId }, 'Modbus RTU port open');
    return client;
  }

  private async disconnect(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c?.isOpen) await new Promise<void>((resolve) => c.close(() => resolve()));
  }

  /** One poll; false when the device or port did not answer. */
  private async pollOnce(): Promise<boolean> {
    let client: ModbusRTU;
    try {
      client = await this.connect();
    } catch (err) {
      this.counters.poll_errors!++;
      log.warn({ path: this.port.path, err: (err as Error).message }, 'cannot open the Modbus port; retrying with backoff');
      return false;
    }
    const raw = new Map<string, number>();
    try {
      for (const r of readPlan(this.map)) {
        const res = r.table === 'holding' ? await client.readHoldingRegisters(r.start, r.length) : await client.readInputRegisters(r.start, r.length);
        res.data.forEach((v: number, i: number) => raw.set(`${r.table}:${r.start + i}`, v));
      }
    } catch (err) {
      this.counters.poll_errors!++;
      log.warn({ path: this.port.path, err: (err as Error).message }, 'Modbus poll failed');
      if (!client.isOpen) await this.disconnect();
      return false;
    }
    this.counters.polls!++;
    const values: Record<string, number> = {};
    for (const reg of this.map.registers) values[reg.name] = decodeRegister(raw.get(`${reg.table}:${reg.address}`)!, reg);
    this.publish('telemetry', { values });
    if (this.map.stateRegister) {
      const code = raw.get(`${this.map.stateRegister.table}:${this.map.stateRegister.address}`)!;
      const state = this.map.stateRegister.states[code];
      if (state && state !== this.lastState) {
        this.lastState = state;
        this.publish('state', { state });
      }
    }
    return true;
  }

  private publish(kind: 'telemetry' | 'state' | 'ack', body: Record<string, unknown>): void {
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
      await this.turn(async () => (await this.connect()).writeRegister(address, value));
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
