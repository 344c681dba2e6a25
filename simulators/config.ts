// The `simulate:` section of linewatch.yaml: the simulated demo line.
import { z } from 'zod';

export const simulateConfigSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('run the simulated line in `linewatch up`'),
  line: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('A'),
  seed: z.number().int().default(1),
  scenario: z.string().nullable().default(null).describe('scenario YAML file; null runs the built-in demo'),
  rateHz: z.number().positive().max(100).default(1).describe('messages per device per second'),
  speedup: z.number().positive().default(1).describe('simulated seconds per real second'),
  devices: z.number().int().min(3).max(100_000).nullable().default(null).describe("total device count; null uses the scenario's layout"),
  mqttMode: z.enum(['auto', 'per-device', 'shared']).default('auto').describe('one MQTT connection per device, or a few shared ones (auto: shared above 200 devices)'),
});
export type SimulateConfig = z.infer<typeof simulateConfigSchema>;
