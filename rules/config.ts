// The `rules:` section of linewatch.yaml (docs/configuration.md#rules).
import { z } from 'zod';

export const rulesSettingsSchema = z.strictObject({
  ackTimeoutMs: z.number().int().min(10).default(2000).describe('how long to wait for a cmd/ack before sending the command again'),
  retries: z.number().int().min(0).max(10).default(2).describe('re-sends after the first attempt before the outcome is expired'),
  commandTtlMs: z.number().int().min(100).default(10_000).describe('a command expires this long after it is issued (expiresAt), unless the rule sets ttl'),
  maxLatenessMs: z.number().int().min(0).default(5000).describe('an event older than this (device ts vs. now) is late: it updates windows but fires nothing'),
  maxClockSkewMs: z.number().int().min(0).default(5000).describe('an event whose device ts is further ahead of the engine clock than this is refused: no window, no watermark, counted (future_ts) and dead-lettered'),
  reorderToleranceMs: z.number().int().min(0).default(1000).describe('a message up to this much older than the newest from its device (reordered in transit) is still acted on'),
  tickMs: z.number().int().min(10).default(100).describe('how often timers (for, clearFor, absence, ack timeouts) are checked'),
  snapshotEveryMs: z.number().int().min(100).default(10_000).describe('how often the state file is written while running (also on stop)'),
  reloadDebounceMs: z.number().int().min(0).default(200).describe('quiet time after a rule file changes before reloading'),
});
export type RulesSettings = z.infer<typeof rulesSettingsSchema>;

export const rulesConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  dir: z.string().default('rules/examples').describe('folder of rule YAML files, reloaded on change'),
  stateFile: z.string().default('.linewatch/rules-state.json').describe('windows, timers and alerts kept across restarts'),
  ...rulesSettingsSchema.shape,
});
export type RulesConfig = z.infer<typeof rulesConfigSchema>;
