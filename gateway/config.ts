// The `gateway:` section of linewatch.yaml: serial ports bridged to MQTT.
import { z } from 'zod';
import { DEVICE_TYPES } from '../contracts/schemas.js';
import { modbusMapSchema } from '../contracts/serial/index.js';

export const CODECS = ['ndjson', 'text', 'modbus'] as const;
export type CodecName = (typeof CODECS)[number];

export const gatewayPortSchema = z.strictObject({
  path: z.string().min(1).describe('serial device, e.g. /dev/ttyUSB0'),
  device: z.string().regex(/^[A-Za-z0-9_-]{1,64}\/[A-Za-z0-9_-]{1,64}$/, 'must be LINE/DEVICE').describe('LINE/DEVICE this port speaks for'),
  /** The device's type, stamped into its state, telemetry and status when a frame carries none (text and Modbus frames never do), so `type:` rules match it. */
  type: z.enum(DEVICE_TYPES).optional().describe(`the device's type (${DEVICE_TYPES.join(', ')}), for frames that carry none`),
  baudRate: z.number().int().positive().default(9600),
  codec: z.enum(CODECS).default('ndjson'),
  /** Longest frame accepted (bytes); a longer line is dropped as `overlong`. */
  maxFrameBytes: z.number().int().min(16).max(65_536).default(1024),
  /** Exclusive lock on the port (serialport's default). */
  lock: z.boolean().default(true),
  /** Reopen delays when the port disappears: doubling from reopenMinMs up to reopenMaxMs. */
  reopenMinMs: z.number().int().min(10).default(500),
  reopenMaxMs: z.number().int().min(10).default(30_000),
  /** Register map, required for codec `modbus`. */
  modbus: modbusMapSchema.optional(),
}).refine((p) => p.codec !== 'modbus' || p.modbus !== undefined, { message: 'codec modbus needs a `modbus:` register map', path: ['modbus'] });
export type GatewayPortConfig = z.input<typeof gatewayPortSchema>;
export type GatewayPort = z.infer<typeof gatewayPortSchema>;

export const gatewayConfigSchema = z.strictObject({
  ports: z.array(gatewayPortSchema).default([]),
  spoolDir: z.string().default('.linewatch/gateway-spool').describe('store-and-forward while the broker is away'),
  /** Largest spool on disk; events beyond it are dropped and counted (`spool_full`). */
  spoolMaxBytes: z.number().int().min(1024).default(256 * 1024 * 1024),
  /** Unacknowledged QoS 1 publishes before events overflow to the spool (bounds memory). */
  maxInFlight: z.number().int().min(1).max(65_535).default(1000),
});
export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;
