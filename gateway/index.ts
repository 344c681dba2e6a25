// The serial gateway: each configured port (ndjson, text, Modbus RTU or Modbus TCP) bridged to the
// broker, with one disk spool so nothing a device says is lost while the broker is away. Modbus
// ports on one TCP endpoint (several unit ids behind a TCP-to-RTU gateway) share one connection.
import type { Bus } from '../bus/index.js';
import { logger } from '../lib/log.js';
import { healthFrom, type Counters, type Health, type Service } from '../lib/service.js';
import { gatewayPortSchema, portEndpoint, sharedEndpointIssues, type GatewayPort, type GatewayPortConfig } from './config.js';
import { LineBridge } from './line-bridge.js';
import { ModbusBridge } from './modbus-bridge.js';
import { ModbusLink } from './modbus-link.js';
import { Outbox } from './outbox.js';
import { SequenceStore } from './sequence-store.js';
import { DiskSpool } from './spool.js';

const log = logger('gateway');

export { gatewayConfigSchema, gatewayPortSchema, portEndpoint, type GatewayConfig, type GatewayPortConfig } from './config.js';
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
const GATEWAY_GAUGES: ReadonlySet<string> = new Set(['ports', 'ports_open', 'modbus_devices_offline', 'spool_backlog_bytes']);

export class SerialGateway implements Service {
  readonly name = 'gateway';
  readonly gauges = GATEWAY_GAUGES;
  private readonly ports: GatewayPort[];
  private lifecycle: 'not started' | 'running' | 'stopped' = 'not started';
  private bridges: (LineBridge | ModbusBridge)[] = [];
  /** Modbus links by endpoint (serial path or tcp://HOST:PORT), each shared by its ports' bridges. */
  private links = new Map<string, ModbusLink>();
  private outbox: Outbox | undefined;
  private spool: DiskSpool | undefined;
  private sequences: SequenceStore | undefined;

  constructor(private readonly options: SerialGatewayOptions) {
    this.ports = options.ports.map((p, i) => {
      const parsed = gatewayPortSchema.safeParse(p);
      if (!parsed.success) throw new Error(`gateway.ports.${i}: ${parsed.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}`);
      return parsed.data;
    });
    const shared = sharedEndpointIssues(this.ports);
    if (shared.length > 0) throw new Error(shared.map((x) => `gateway.ports.${x.path.join('.')}: ${x.message}`).join('; '));
  }

  async start(): Promise<void> {
    this.spool = await DiskSpool.open(this.options.spoolDir, this.options.spoolMaxBytes ?? 256 * 1024 * 1024);
    // In the spool dir: the spool's LOCK keeps it to this gateway.
    const sequences = (this.sequences = SequenceStore.open(this.options.spoolDir));
    this.outbox = new Outbox(this.options.bus, this.spool, this.options.maxInFlight);
    for (const port of this.ports) {
      const sequence = sequences.device(port.device);
      const bridge = port.codec === 'modbus' ? new ModbusBridge(port, this.linkFor(port), this.options.bus, this.outbox, sequence) : new LineBridge(port, this.options.bus, this.outbox, sequence);
      await bridge.start();
      this.bridges.push(bridge);
    }
    this.lifecycle = 'running';
  }

  /** The port's Modbus link: one per TCP endpoint, shared by its unit ids; one per serial port. */
  private linkFor(port: GatewayPort): ModbusLink {
    const endpoint = portEndpoint(port);
    let link = port.transport === 'tcp' ? this.links.get(endpoint) : undefined;
    if (!link) {
      link = new ModbusLink(port);
      this.links.set(port.transport === 'tcp' ? endpoint : `${endpoint}#${this.links.size}`, link);
    }
    return link;
  }

  async stop(): Promise<void> {
    if (this.lifecycle === 'running') this.lifecycle = 'stopped';
    const bridges = this.bridges;
    this.bridges = [];
    await Promise.all(bridges.map((b) => b.stop()));
    const links = [...this.links.values()];
    this.links.clear();
    await Promise.all(links.map((l) => l.close()));
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

  /** Each port as `ENDPOINT (CODEC[, unit N]) → LINE/DEVICE[ (TYPE)]`, for start-up lines. */
  describePorts(): string[] {
    return this.ports.map((p) => `${portEndpoint(p)} (${p.codec}${p.codec === 'modbus' ? ` ${p.transport} unit ${p.modbus?.unitId}` : ''}) → ${p.device}${p.type ? ` (${p.type})` : ''}`);
  }

  /** Whether each port is open right now, by serial path or `tcp://HOST:PORT` (the endpoint's one connection, for all its unit ids). */
  portsOpen(): Record<string, boolean> {
    return Object.fromEntries(this.bridges.map((b, i) => [portEndpoint(this.ports[i]!), bridgeOpen(b)]));
  }

  /**
   * down: not running, or no port open (nothing reaches the broker from the line). degraded: a
   * port (or Modbus TCP connection) closed and being reopened, a Modbus device reported offline,
   * or events spooled on disk because the broker is away or slow.
   */
  health(): Health {
    if (this.lifecycle !== 'running') return { status: 'down', reasons: [this.lifecycle] };
    const closed = this.ports.filter((_port, index) => !bridgeOpen(this.bridges[index]!));
    const silent = this.bridges.flatMap((b, index) => (b instanceof ModbusBridge && b.isOpen && b.offline ? [{ port: this.ports[index]!, failed: b.failedPolls }] : []));
    const backlogBytes = this.outbox?.backlogBytes() ?? 0;
    const spooling = { failed: backlogBytes > 0, status: 'degraded', reason: `${backlogBytes} bytes of events spooled on disk, waiting for the broker; replayed in order once it takes them` } as const;
    if (closed.length === this.ports.length) return healthFrom([{ failed: true, status: 'down', reason: `no serial port${this.ports.some((p) => p.transport === 'tcp') ? ' or Modbus TCP connection' : ''} is open (${this.ports.length} configured)` }, spooling]);
    return healthFrom([
      ...closed.map((port) => ({ failed: true, status: 'degraded' as const, reason: port.transport === 'tcp' ? `Modbus TCP connection ${portEndpoint(port)} (${port.device}) is not open; reconnecting` : `serial port ${port.path} (${port.device}) is closed; reopening it` })),
      ...silent.map(({ port, failed }) => ({ failed: true, status: 'degraded' as const, reason: `Modbus device ${port.device} (unit ${port.modbus?.unitId} on ${portEndpoint(port)}) does not answer (${failed} polls in a row); reported offline` })),
      spooling,
    ]);
  }

  counters(): Counters {
    const out: Counters = { ports: this.ports.length, modbus_devices_offline: 0 };
    const add = (k: string, v: number): void => {
      out[k] = (out[k] ?? 0) + v;
    };
    for (const link of this.links.values()) {
      add('reconnects', link.counters.reconnects);
      add('connect_failures', link.counters.connect_failures);
    }
    for (const b of this.bridges) {
      for (const [k, v] of Object.entries(b.counters)) add(k, v);
      if (b instanceof LineBridge) {
        add('port_reopens', b.link.reopens);
        add('port_open_failures', b.link.openFailures);
      }
      add('ports_open', bridgeOpen(b) ? 1 : 0);
      if (b instanceof ModbusBridge) add('modbus_devices_offline', b.offline ? 1 : 0);
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
