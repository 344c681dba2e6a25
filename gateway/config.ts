// The `gateway:` section of linewatch.yaml: serial ports bridged to MQTT.
import { z } from 'zod';

export const CODECS = ['ndjson', 'text', 'modbus'] as const;

export const gatewayPortSchema = z.strictObject({
  path: z.string().describe('serial device, e.g. /dev/ttyUSB0'),
  device: z.string().regex(/^[A-Za-z0-9_-]{1,64}\/[A-Za-z0-9_-]{1,64}$/, 'must be LINE/DEVICE').describe('LINE/DEVICE this port speaks for'),
  baudRate: z.number().int().positive().default(9600),
  codec: z.enum(CODECS).default('ndjson'),
});

export const gatewayConfigSchema = z.strictObject({
  ports: z.array(gatewayPortSchema).default([]),
  spoolDir: z.string().default('.linewatch/gateway-spool').describe('store-and-forward while the broker is away'),
});
export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;
