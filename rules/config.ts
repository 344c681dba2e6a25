// The `rules:` section of linewatch.yaml (docs/configuration.md#rules).
import { z } from 'zod';
import { lineOwnershipShape, oneOwnership } from '../contracts/line-workers.js';
import type { CommandAction } from '../contracts/schemas.js';

const completionMs = z.number().int().min(100);

export const rulesSettingsSchema = z.strictObject({
  ackTimeoutMs: z.number().int().min(10).default(2000).describe('how long to wait for a cmd/ack before sending the command again'),
  retries: z.number().int().min(0).max(10).default(2).describe('re-sends after the first attempt before the outcome is expired'),
  commandTtlMs: z.number().int().min(100).default(10_000).describe('a command expires this long after it is issued (expiresAt), unless the rule sets ttl'),
  completionTimeoutMs: z
    .strictObject({
      set_speed: completionMs.default(60_000),
      set_strategy: completionMs.default(30_000),
      stop: completionMs.default(30_000),
      start: completionMs.default(30_000),
      reset_fault: completionMs.default(30_000),
    } satisfies Record<CommandAction, z.ZodType>)
    .prefault({})
    .describe('per action: how long an accepted command waits for done or failed before it is no longer pending (a later outcome is still recorded, counted acks_late)'),
  recommandLimit: z.number().int().min(0).max(100).default(3).describe('re-commands of a setpoint whose reported value differs from the acknowledged one, before the engine gives up (until the device reports the value again)'),
  maxLatenessMs: z.number().int().min(0).default(5000).describe('an event older than this (device ts vs. now) is late: it updates windows but fires nothing'),
  maxClockSkewMs: z.number().int().min(0).default(5000).describe('an event whose device ts is further ahead of the engine clock than this is refused: no window, no watermark, counted (future_ts) and dead-lettered'),
  reorderToleranceMs: z.number().int().min(0).default(1000).describe('a message up to this much older than the newest from its device (reordered in transit) is still acted on'),
  tickMs: z.number().int().min(10).default(100).describe('how often timers (for, clearFor, absence, ack timeouts) are checked'),
  snapshotEveryMs: z.number().int().min(100).default(10_000).describe('how often the state file is written while running (also on stop)'),
  reloadDebounceMs: z.number().int().min(0).default(200).describe('quiet time after a rule file changes before reloading'),
});
export type RulesSettings = z.infer<typeof rulesSettingsSchema>;
/** Settings as given (each key optional, `completionTimeoutMs` per action too). */
export type RulesSettingsInput = z.input<typeof rulesSettingsSchema>;

export const rulesConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  dir: z.string().default('rules/examples').describe('folder of rule YAML files, reloaded on change'),
  stateFile: z.string().default('.linewatch/rules-state.json').describe('windows, timers and alerts kept across restarts (a worker of some lines: rules-state.<worker>.json beside it)'),
  shadowDir: z.string().nullable().default(null).describe('a second folder of rule files run beside dir on the same events, its commands and alarms only under lw/_shadow/ (never sent to a device); null: none'),
  /** Which lines this engine acts on, when several run (docs/rules.md, "Running several workers"): null = every line. */
  ...lineOwnershipShape,
  ...rulesSettingsSchema.shape,
}).superRefine(oneOwnership('rules'));
export type RulesConfig = z.infer<typeof rulesConfigSchema>;

/** The engine's settings out of the `rules:` section: its keys of rulesSettingsSchema, none of the section's own (dir, stateFile, shadowDir, lines…). */
export function engineSettings(section: RulesConfig): RulesSettings {
  return Object.fromEntries(Object.keys(rulesSettingsSchema.shape).map((key) => [key, section[key as keyof RulesSettings]])) as RulesSettings;
}
