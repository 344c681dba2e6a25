// The `gateway:` section of linewatch.yaml: serial ports bridged to MQTT.
import { z } from 'zod';
import { DEVICE_TYPES } from '../contracts/schemas.js';
import { modbusMapSchema } from '../contracts/serial/index.js';

export const CODECS = ['ndjson', 'text', 'modbus'] as const;
export type CodecName = (typeof CODECS)[number];
/** How a Modbus device is reached: RTU over the serial `path`, or TCP to `host`:`tcpPort`. */
export const MODBUS_TRANSPORTS = ['rtu', 'tcp'] as const;
export type ModbusTransport = (typeof MODBUS_TRANSPORTS)[number];

export const gatewayPortSchema = z.strictObject({
  /** Required unless `transport: tcp`. */
  path: z.string().min(1).optional().describe('serial device, e.g. /dev/ttyUSB0'),
  /** Modbus only: `rtu` polls over the serial `path`; `tcp` over a TCP connection to `host`:`tcpPort` (one per endpoint, shared by its unit ids). */
  transport: z.enum(MODBUS_TRANSPORTS).default('rtu'),
  /** Modbus TCP: the device's (or TCP-to-RTU gateway's) host name or IP address. */
  host: z.string().min(1).optional(),
  /** Modbus TCP: its port. */
  tcpPort: z.number().int().min(1).max(65_535).default(502),
  /** Modbus TCP: how long a connection attempt may take before it counts as failed. */
  connectTimeoutMs: z.number().int().min(50).default(3000),
  device: z.string().regex(/^[A-Za-z0-9_-]{1,64}\/[A-Za-z0-9_-]{1,64}$/, 'must be LINE/DEVICE').describe('LINE/DEVICE this port speaks for'),
  /** The device's type, stamped into its state, telemetry and status when a frame carries none (text and Modbus frames never do), so `type:` rules match it. */
  type: z.enum(DEVICE_TYPES).optional().describe(`the device's type (${DEVICE_TYPES.join(', ')}), for frames that carry none`),
  baudRate: z.number().int().positive().default(9600),
  codec: z.enum(CODECS).default('ndjson'),
  /** Longest frame accepted (bytes); a longer line is dropped as `overlong`. */
  maxFrameBytes: z.number().int().min(16).max(65_536).default(1024),
  /** Exclusive lock on the port (serialport's default). */
  lock: z.boolean().default(true),
  /** Reopen delays when the port (or TCP connection) disappears, and poll retry delays: doubling from reopenMinMs up to reopenMaxMs. */
  reopenMinMs: z.number().int().min(10).default(500),
  reopenMaxMs: z.number().int().min(10).default(30_000),
  /** Register map, required for codec `modbus`. */
  modbus: modbusMapSchema.optional(),
}).superRefine((p, ctx) => {
  const issue = (key: string, message: string): void => ctx.addIssue({ code: 'custom', path: [key], message });
  if (p.codec === 'modbus' && p.modbus === undefined) issue('modbus', 'codec modbus needs a `modbus:` register map');
  if (p.transport === 'tcp') {
    if (p.codec !== 'modbus') issue('transport', `transport tcp is for codec modbus (Modbus TCP); codec ${p.codec} speaks over a serial \`path\` only`);
    if (p.host === undefined) issue('host', 'transport tcp needs `host:` (the device\'s host name or IP address; `tcpPort:` defaults to 502)');
    if (p.path !== undefined) issue('path', 'transport tcp polls over TCP: leave `path` out (or use transport rtu for a serial port)');
  } else {
    if (p.path === undefined) issue('path', `a serial port needs \`path:\` (e.g. /dev/ttyUSB0)${p.codec === 'modbus' ? ', or `transport: tcp` with `host:` for Modbus TCP' : ''}`);
    if (p.host !== undefined) issue('host', '`host` is for transport tcp; set `transport: tcp` (Modbus TCP) or leave `host` out');
  }
});
export type GatewayPortConfig = z.input<typeof gatewayPortSchema>;
export type GatewayPort = z.infer<typeof gatewayPortSchema>;

/** Where a port's device is reached, for logs, health and `portsOpen()`: its serial path, or `tcp://HOST:PORT`. */
export function portEndpoint(port: GatewayPort): string {
  if (port.transport === 'tcp') return `tcp://${port.host?.includes(':') ? `[${port.host}]` : port.host}:${port.tcpPort}`;
  return serialPath(port);
}

/** The serial path of a port that has one: every port but `transport: tcp` (gatewayPortSchema checks it). */
export function serialPath(port: GatewayPort): string {
  if (port.path === undefined) throw new Error(`gateway port of ${port.device} has no serial path (transport ${port.transport})`);
  return port.path;
}

/** The settings of one TCP connection: every port on the endpoint must give the same. */
const SHARED_TCP_SETTINGS = ['connectTimeoutMs', 'reopenMinMs', 'reopenMaxMs'] as const;

/**
 * Ports on the same Modbus TCP endpoint share one connection (a TCP-to-RTU gateway with several
 * unit ids behind it): each needs its own unit id, and the connection's settings are one.
 * Issues by path below `ports` (e.g. `[3, 'modbus', 'unitId']`).
 */
export function sharedEndpointIssues(ports: readonly GatewayPort[]): { path: (string | number)[]; message: string }[] {
  const issues: { path: (string | number)[]; message: string }[] = [];
  const first = new Map<string, { index: number; port: GatewayPort }>();
  const units = new Map<string, { index: number; port: GatewayPort }>();
  ports.forEach((port, index) => {
    if (port.transport !== 'tcp') return;
    const endpoint = portEndpoint(port);
    const head = first.get(endpoint);
    if (head === undefined) first.set(endpoint, { index, port });
    else {
      for (const key of SHARED_TCP_SETTINGS) {
        if (port[key] !== head.port[key]) issues.push({ path: [index, key], message: `${port[key]} differs from ports.${head.index}.${key} (${head.port[key]}), which shares the connection to ${endpoint}; give every port on one endpoint the same ${key}` });
      }
    }
    const unitId = port.modbus?.unitId;
    if (unitId === undefined) return;
    const unitKey = `${endpoint} ${unitId}`;
    const other = units.get(unitKey);
    if (other !== undefined) issues.push({ path: [index, 'modbus', 'unitId'], message: `unit id ${unitId} on ${endpoint} is already polled for ports.${other.index} (${other.port.device}); each device behind one endpoint needs its own unit id` });
    else units.set(unitKey, { index, port });
  });
  return issues;
}

export const gatewayConfigSchema = z.strictObject({
  ports: z
    .array(gatewayPortSchema)
    .superRefine((ports, ctx) => {
      for (const issue of sharedEndpointIssues(ports)) ctx.addIssue({ code: 'custom', ...issue });
    })
    .default([]),
  spoolDir: z.string().default('.linewatch/gateway-spool').describe('store-and-forward while the broker is away'),
  /** Largest spool on disk; events beyond it are dropped and counted (`spool_full`). */
  spoolMaxBytes: z.number().int().min(1024).default(256 * 1024 * 1024),
  /** Unacknowledged QoS 1 publishes before events overflow to the spool (bounds memory). */
  maxInFlight: z.number().int().min(1).max(65_535).default(1000),
});
export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;
