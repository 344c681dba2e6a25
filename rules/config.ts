// The `rules:` section of linewatch.yaml.
import { z } from 'zod';

export const rulesConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  dir: z.string().default('rules/examples').describe('folder of rule YAML files, reloaded on change'),
  stateFile: z.string().default('.linewatch/rules-state.json').describe('windows, timers and alerts kept across restarts'),
});
export type RulesConfig = z.infer<typeof rulesConfigSchema>;
