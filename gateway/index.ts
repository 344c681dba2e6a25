// The serial gateway: each configured port (ndjson, text or Modbus RTU) bridged to the broker,
// with one disk spool so nothing a serial device says is lost while the broker is away.
import type { Bus } from '../bus/index.js';
import { logger } from '../lib/log.js';
import { healthFrom, type Counters, type Health, type Service } from '../lib/service.js';
import { gatewayPortSchema, type GatewayPort, type GatewayPortConfig } from './config.js';
import { LineBridge } from './line-bridge.js';
import { ModbusBridge } from './modbus-bridge.js';
import { Outbox } from './outbox.js';
import { SequenceStore } from './sequence-store.js';
import { DiskSpool } from './spool.js';

const log = logger('gateway');

export { gatewayConfigSchema, gatewayPortSchema, type GatewayConfig, type GatewayPortConfig } from './config.js';
export { listSerialPorts, type PortListing } from './list-ports.js';
export { lineCodecs, ndjsonCodec, textCodec, xorChecksum, type LineCodec, type ModbusMap } from '../contracts/serial/index.js';

export interface SerialGatewayOptions {
  bus: Bus;
  ports: GatewayPortConfig[];
  /** Directory of the store-and-forward spool. */
  spoolDir: string;
  /** Default 256 MiB. */
  spoolMaxBytes?: number;
  /** Unacknowledged direct publishes before events overflow to the spool. Default 1000. */
  maxInFlight?: number;
}

/** The keys of counters() that are levels, not totals. */
const GATEWAY_GAUGES: ReadonlySet<string> = new Set(['ports', 'ports_open', 'spool_backlog_bytes']);

export class SerialGateway implements Service {
  readonly name = 'gateway';
  readonly gauges = GATEWAY_GAUGES;
  private readonly ports: GatewayPort[];
  private lifecycle: 'not started' | 'running' | 'stopped' = 'not started';
  private bridges: (LineBridge | ModbusBridge)[] = [];
  private outbox: Outbox | undefined;
  private spool: DiskSpool | undefined;
  private sequences: SequenceStore | undefined;

  constructor(private readonly options: SerialGatewayOptions) {
    this.ports = options.ports.map((p, i) => {
      const parsed = gatewayPortSchema.safeParse(p);
      if (!parsed.success) throw new Error(`gateway.ports.${i}: ${parsed.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}`);
      return parsed.data;
    });
  }

  async start(): Promise<void> {
    this.spool = await DiskSpool.open(this.options.spoolDir, this.options.spoolMaxBytes ?? 256 * 1024 * 1024);
    // In the spool dir: the spool's LOCK keeps it to this gateway.
    const sequences = (this.sequences = SequenceStore.open(this.options.spoolDir));
    this.outbox = new Outbox(this.options.bus, this.spool, this.options.maxInFlight);
    for (const port of this.ports) {
      const sequence = sequences.device(port.device);
      const bridge = port.codec === 'modbus' ? new ModbusBridge(port, this.options.bus, this.outbox, sequence) : new LineBridge(port, this.options.bus, this.outbox, sequence);
      await bridge.start();
      this.bridges.push(bridge);
    }
    this.lifecycle = 'running';
  }

  async stop(): Promise<void> {
    if (this.lifecycle === 'running') this.lifecycle = 'stopped';
    const bridges = this.bridges;
    this.bridges = [];
    await Promise.all(bridges.map((b) => b.stop()));
    this.closeSequences();
    await this.outbox?.stop();
    await this.spool?.close();
    this.outbox = undefined;
    this.spool = undefined;
  }

  /** Writes each device's exact next seq, so the next start goes on without a gap; a failure only costs that gap. */
  private closeSequences(): void {
    try {
      this.sequences?.close();
    } catch (err) {
      log.warn({ dir: this.options.spoolDir, err: (err as Error).message }, 'could not write the devices\' next seq; the next start goes on from the reserved block\'s end (a gap)');
    }
    this.sequences = undefined;
  }

  /** True when every event has been published (nothing spooled or in flight). */
  drained(): boolean {
    return this.outbox?.idle() ?? true;
  }

  /** Whether each port is open right now, by path. */
  portsOpen(): Record<string, boolean> {
    return Object.fromEntries(this.bridges.map((b, i) => [this.ports[i]!.path, bridgeOpen(b)]));
  }

  /**
   * down: not running, or no port open (nothing reaches the broker from the line). degraded: a
   * port closed and being reopened, or events spooled on disk because the broker is away or slow.
   */
  health(): Health {
    if (this.lifecycle !== 'running') return { status: 'down', reasons: [this.lifecycle] };
    const closed = this.ports.filter((_port, index) => !bridgeOpen(this.bridges[index]!));
    const backlogBytes = this.outbox?.backlogBytes() ?? 0;
    const spooling = { failed: backlogBytes > 0, status: 'degraded', reason: `${backlogBytes} bytes of events spooled on disk, waiting for the broker; replayed in order once it takes them` } as const;
    if (closed.length === this.ports.length) return healthFrom([{ failed: true, status: 'down', reason: `no serial port is open (${this.ports.length} configured)` }, spooling]);
    return healthFrom([...closed.map((port) => ({ failed: true, status: 'degraded' as const, reason: `serial port ${port.path} (${port.device}) is closed; reopening it` })), spooling]);
  }

  counters(): Counters {
    const out: Counters = { ports: this.ports.length };
    const add = (k: string, v: number): void => {
      out[k] = (out[k] ?? 0) + v;
    };
    for (const b of this.bridges) {
      for (const [k, v] of Object.entries(b.counters)) add(k, v);
      if (b instanceof LineBridge) {
        add('port_reopens', b.link.reopens);
        add('port_open_failures', b.link.openFailures);
      }
      add('ports_open', bridgeOpen(b) ? 1 : 0);
    }
    if (this.outbox) {
      for (const [k, v] of Object.entries(this.outbox.counters)) out[k] = v;
      out.spool_backlog_bytes = this.outbox.backlogBytes();
    }
    if (this.spool) {
      out.spool_corrupt_records = this.spool.corrupt;
      out.spool_torn_records = this.spool.torn;
    }
    return out;
  }
}

function bridgeOpen(bridge: LineBridge | ModbusBridge): boolean {
  return bridge instanceof LineBridge ? bridge.link.isOpen : bridge.isOpen;
}
