// The rules engine's public face (docs/rules.md).
export { RulesEngine, type RulesEngineOptions, type EngineEvent, type AlertEvent, type SuspendEvent, type DeviceKind, type DeviceEvent } from './engine.js';
export type { CommandEvent, OutcomeEvent } from './commands.js';
export { ManualClock, systemClock, type Clock } from './clock.js';
export { loadRuleDir, parseRuleFile, formatLoadError, type LoadError, type RuleSet, type CompiledRule } from './load.js';
export { rulesConfigSchema, rulesSettingsSchema, type RulesConfig, type RulesSettings } from './config.js';
