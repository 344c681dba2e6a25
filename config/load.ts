// Loads and validates linewatch.yaml once at start. Errors name the key and say what to do.
import { existsSync, readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { configSchema, type LinewatchConfig } from './schema.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const DEFAULT_CONFIG_FILE = 'linewatch.yaml';

/**
 * Reads `file` (or linewatch.yaml in the working directory if it exists), applies `overrides`
 * (from CLI flags, deep-merged over the file) and validates the result.
 */
export function loadConfig(file?: string, overrides: Record<string, unknown> = {}): LinewatchConfig {
  let raw: unknown = {};
  const path = file ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  if (path) {
    if (!existsSync(path)) throw new ConfigError(`config file ${path} does not exist; pass an existing file with --config or leave it out to use defaults`);
    const doc = parseDocument(readFileSync(path, 'utf8'));
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      throw new ConfigError(`${path}: YAML syntax error at line ${e.linePos?.[0]?.line ?? '?'}: ${e.message}`);
    }
    raw = doc.toJS() ?? {};
  }
  return parseConfig(deepMerge(raw, overrides), path ?? 'defaults');
}

export function parseConfig(raw: unknown, source = 'config'): LinewatchConfig {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`${source}: invalid configuration:\n${lines.join('\n')}\nSee docs/configuration.md for every key and its default.`);
  }
  return parsed.data;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merges `over` into `base`; undefined values in `over` (unset CLI flags) leave `base` alone. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = deepMerge(base[k], v);
  }
  return out;
}
