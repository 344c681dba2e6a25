// One connection to Modbus devices, kept by the gateway and shared by the devices behind it: a
// serial port polled over RTU, or a TCP connection to a Modbus TCP endpoint (a device, or a
// TCP-to-RTU gateway with several unit ids behind it; one connection per endpoint). Requests
// take turns on it — RTU is one request at a time, and a TCP-to-RTU gateway forwards onto such a
// bus — each with its own unit id and timeout. When it cannot be opened, or closes under a request
// (the port pulled, the TCP connection refused, reset or closed), it is reopened on the next
// request after a delay doubling from reopenMinMs to reopenMaxMs (`lib/backoff.ts`), back to
// reopenMinMs once it opens; a request in the meantime fails at once with the delay left.
import modbusSerial from 'modbus-serial';
import { Backoff } from '../lib/backoff.js';
import { LogLimiter } from '../lib/log-limit.js';
import { logger } from '../lib/log.js';
import { withTimeout } from '../lib/wait.js';
import { portEndpoint, serialPath, type GatewayPort } from './config.js';

const log = logger('gateway');

// modbus-serial is CommonJS: its typings put the client class on `.default` (also set at runtime).
const ModbusRTU = modbusSerial.default;
export type ModbusClient = InstanceType<typeof ModbusRTU>;

/** Errors of an open link (a serial port error after opening): logged at most 10 per minute per link. */
const ERROR_LOG_LIMIT = { linesPerInterval: 10, intervalMs: 60_000 } as const;

export interface ModbusLinkCounters {
  /** Opens after the first (the link was lost and came back). */
  reconnects: number;
  /** Attempts to open it that failed (port missing, connection refused or timed out). */
  connect_failures: number;
}

export class ModbusLink {
  readonly counters: ModbusLinkCounters = { reconnects: 0, connect_failures: 0 };
  /** The serial path, or `tcp://HOST:PORT`. */
  readonly endpoint: string;
  private client: ModbusClient | undefined;
  private opened = 0;
  private retryAt = 0;
  private readonly reopen: Backoff;
  private readonly errorLog: LogLimiter;
  /** One request at a time on the link: polls and writes of every device behind it take turns here. */
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** `port`: the first gateway port of this endpoint; its transport settings and backoff are the link's. */
  constructor(private readonly port: GatewayPort) {
    this.endpoint = portEndpoint(port);
    this.reopen = new Backoff({ initialMs: port.reopenMinMs, maxMs: port.reopenMaxMs });
    this.errorLog = new LogLimiter(log.child({ endpoint: this.endpoint }), ERROR_LOG_LIMIT);
  }

  get isOpen(): boolean {
    return this.client?.isOpen ?? false;
  }

  /** Milliseconds until the next attempt to open the link may be made (0 when open, or now). */
  retryInMs(): number {
    return this.isOpen ? 0 : Math.max(0, this.retryAt - Date.now());
  }

  /**
   * Runs `op` on the open link for unit `unitId`, after the requests before it; opens the link
   * first. Throws when the link cannot be opened (now, or before the backoff delay is over) or
   * when `op` fails; a link found closed after a failure is reopened by a later request.
   */
  request<T>(unitId: number, timeoutMs: number, op: (client: ModbusClient) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.closed) throw new Error(`Modbus link ${this.endpoint} is closed (the gateway is stopping)`);
      const client = await this.open();
      client.setID(unitId);
      client.setTimeout(timeoutMs);
      try {
        return await op(client);
      } finally {
        if (!client.isOpen) this.drop(client);
      }
    };
    const next = this.chain.then(run, run);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Waits for the request under way, then closes the link; later requests fail. */
  async close(): Promise<void> {
    this.closed = true;
    await this.chain;
    const client = this.client;
    this.client = undefined;
    if (client) await this.shut(client);
  }

  private async open(): Promise<ModbusClient> {
    if (this.client?.isOpen) return this.client;
    if (this.client) this.drop(this.client);
    const wait = this.retryAt - Date.now();
    if (wait > 0) throw new Error(`${this.describe()} is not open; next attempt in ${wait} ms`);
    const client = new ModbusRTU();
    // An error event without a listener would throw and take the process down (modbus-serial
    // re-emits the serial port's errors on the client).
    client.on('error', (err: unknown) => this.errorLog.write('warn', 'Modbus link error', { err: (err as Error).message }, 'Modbus link error'));
    try {
      await this.connect(client);
    } catch (err) {
      this.counters.connect_failures++;
      const delay = this.reopen.next();
      this.retryAt = Date.now() + delay;
      void this.shut(client);
      throw new Error(`cannot open ${this.describe()}: ${(err as Error).message}; next attempt in ${delay} ms`, { cause: err });
    }
    if (this.opened++ > 0) this.counters.reconnects++;
    this.reopen.reset();
    this.retryAt = 0;
    this.client = client;
    log.info({ endpoint: this.endpoint }, `${this.describe()} open`);
    return client;
  }

  private async connect(client: ModbusClient): Promise<void> {
    if (this.port.transport === 'tcp') {
      // No `timeout` option: modbus-serial would make it the socket's idle timeout (reported, never acted on).
      await withTimeout(client.connectTCP(this.port.host ?? '', { port: this.port.tcpPort }), this.port.connectTimeoutMs, `a TCP connection to ${this.endpoint}`);
    } else {
      await client.connectRTUBuffered(serialPath(this.port), { baudRate: this.port.baudRate, lock: this.port.lock, hupcl: false } as never);
    }
  }

  /** Forgets a client whose port or connection closed under it; the next request opens a new one. */
  private drop(client: ModbusClient): void {
    if (this.client !== client) return;
    this.client = undefined;
    log.warn({ endpoint: this.endpoint }, `${this.describe()} closed; reopening it on the next request`);
    void this.shut(client);
  }

  /**
   * Releases a client. TCP: destroy the socket (an orderly end could wait on a peer that never
   * answers). Only between requests: modbus-serial's destroy() cancels the timeouts of requests
   * still pending, which would then never settle.
   */
  private async shut(client: ModbusClient): Promise<void> {
    if (this.port.transport === 'tcp') {
      client.destroy(() => undefined);
      return;
    }
    if (client.isOpen) await new Promise<void>((resolve) => client.close(() => resolve()));
  }

  private describe(): string {
    return this.port.transport === 'tcp' ? `the Modbus TCP connection to ${this.endpoint}` : `the Modbus RTU port ${this.endpoint}`;
  }
}
