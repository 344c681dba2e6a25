// The `oee:` section of linewatch.yaml (docs/configuration.md#oee, docs/oee.md).
import { z } from 'zod';

export const oeeLineSchema = z.strictObject({
  idealRatePerMin: z.number().positive().optional().describe('ideal output of this line, parts per minute'),
  countDevice: z.string().optional().describe('the device whose good/scrap counters are the line output (default: the line controller, else every device)'),
});

export const oeeConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** How often each line's figures are published on lw/{line}/summary (and so stored by the historian). */
  publishIntervalMs: z.number().int().min(100).default(10_000),
  /** Default ideal output, parts per minute, for lines without their own (12 = the demo line's 5 s cycle). */
  idealRatePerMin: z.number().positive().default(12),
  /** Telemetry fields holding cumulative good / scrap part counters. */
  goodField: z.string().default('goodCount'),
  scrapField: z.string().default('scrapCount'),
  lines: z.record(z.string(), oeeLineSchema).default({}),
});
export type OeeConfig = z.infer<typeof oeeConfigSchema>;
