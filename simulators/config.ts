// The `simulate:` section of linewatch.yaml: the simulated demo line.
import { z } from 'zod';

export const simulateConfigSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('run the simulated line in `linewatch up`'),
  line: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('A'),
  seed: z.number().int().default(1),
  scenario: z.string().nullable().default(null).describe('scenario YAML file; null runs the built-in demo'),
  rateHz: z.number().positive().default(1).describe('messages per device per second'),
  speedup: z.number().positive().default(1).describe('simulated seconds per real second'),
});
export type SimulateConfig = z.infer<typeof simulateConfigSchema>;
