// The `historian:` section of linewatch.yaml.
import { z } from 'zod';

export const historianConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  influxUrl: z.string().url().nullable().default(null).describe('InfluxDB 1.x API base URL; null starts a managed influxd'),
  database: z.string().default('linewatch'),
  username: z.string().optional(),
  password: z.string().optional(),
  batchSize: z.number().int().min(1).default(5000),
  flushIntervalMs: z.number().int().min(10).default(1000),
  spoolDir: z.string().default('.linewatch/historian-spool'),
  spoolMaxBytes: z.number().int().min(1024 * 1024).default(1024 * 1024 * 1024),
});
export type HistorianConfig = z.infer<typeof historianConfigSchema>;
