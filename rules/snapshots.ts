// The rules state file (rules.stateFile, docs/rules.md#durable-state): device records, non-idle
// rule instances (with the hash of their rule's definition) and the command loop's state (intents,
// setpoints, pending commands, suspensions), written
// atomically (temp file + rename) and read back at start.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { logger } from '../lib/log.js';
import type { AlarmDesk } from './alarm-desk.js';
import type { LineAlarm } from './alarms.js';
import type { CommandCenter, CommandCenterSnapshot } from './commands.js';
import type { DeviceRecord, DeviceTable } from './device-table.js';
import type { Instance, InstanceTable } from './instance-state.js';
import type { CompiledRule } from './load.js';
import { holderOf } from './rule-actions.js';

const log = logger('rules');

export interface Snapshot {
  version: 1;
  savedAt: number;
  devices: DeviceRecord[];
  /** Each with the hash of its rule: restored only into the same definition. */
  instances: (Instance & { hash: string })[];
  commands: CommandCenterSnapshot;
  /** Every alarm that is not normal (absent in files written before alarms had states). */
  alarms?: LineAlarm[];
}

/** Writes the snapshot; false (logged) if the file cannot be written. */
export function writeSnapshot(file: string, snapshot: Snapshot): boolean {
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, JSON.stringify(snapshot));
    renameSync(`${file}.tmp`, file);
    return true;
  } catch (err) {
    log.error({ err: (err as Error).message, file }, 'cannot write the rules state file; state will not survive a restart');
    return false;
  }
}

/** The snapshot in `file`; undefined if there is none, it is unreadable (logged) or of another version. */
export function readSnapshot(file: string): Snapshot | undefined {
  let snapshot: Snapshot;
  try {
    snapshot = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      log.warn({ err: (err as Error).message, file }, 'the rules state file is unreadable; starting with empty state');
    }
    return undefined;
  }
  return snapshot.version === 1 ? snapshot : undefined;
}

/** What a snapshot is taken of and restored into. */
export interface SnapshotParts {
  devices: DeviceTable;
  instances: InstanceTable;
  rulesById: ReadonlyMap<string, CompiledRule>;
  commands: CommandCenter;
  alarms: AlarmDesk;
}

/** The engine's state now: every device, each instance that is not idle or has a window, the command loop. */
export function takeSnapshot(parts: SnapshotParts, savedAt: number): Snapshot {
  const instances: Snapshot['instances'] = [];
  for (const [ruleId, byKey] of parts.instances.entries()) {
    const hash = parts.rulesById.get(ruleId)?.hash;
    if (!hash) continue;
    for (const instance of byKey.values()) if (instance.phase !== 'idle' || instance.window) instances.push({ ...instance, hash });
  }
  return { version: 1, savedAt, devices: parts.devices.all(), instances, commands: parts.commands.snapshot(), alarms: parts.alarms.snapshot() };
}

/**
 * Puts a snapshot back; an instance whose rule changed since (another hash) is dropped, its alarm
 * is kept (an operator acknowledges or clears it). Returns the instances and alarms restored.
 */
export function restoreSnapshot(parts: SnapshotParts, snapshot: Snapshot): { instances: number; alarms: number } {
  parts.devices.restore(snapshot.devices);
  let restored = 0;
  const dropped = new Map<string, { instances: number; why: string }>();
  for (const { hash, ...saved } of snapshot.instances) {
    const rule = parts.rulesById.get(saved.ruleId);
    if (!rule || rule.hash !== hash) {
      // The rule is gone (renamed, removed) or changed: its old state no longer means the same.
      const entry = dropped.get(saved.ruleId) ?? { instances: 0, why: rule ? 'changed (another definition)' : 'is not loaded any more (renamed or removed)' };
      entry.instances++;
      dropped.set(saved.ruleId, entry);
      continue;
    }
    parts.instances.restore(rule, saved);
    restored++;
  }
  for (const [ruleId, { instances, why }] of dropped) log.info({ rule: ruleId, instances }, `rules state: rule ${ruleId} ${why}; its ${instances} saved instance(s) dropped`);
  parts.commands.restore(snapshot.commands);
  // An active intent holds only while its instance is active: those of instances not restored end.
  const activeHolders = new Set<string>();
  for (const [ruleId, byKey] of parts.instances.entries()) {
    const rule = parts.rulesById.get(ruleId);
    if (rule) for (const instance of byKey.values()) if (instance.phase === 'active') activeHolders.add(holderOf(rule, instance));
  }
  parts.commands.retainIntents((intent) => parts.rulesById.has(intent.request.ruleId) && (intent.phase !== 'active' || activeHolders.has(intent.request.holder)));
  return { instances: restored, alarms: parts.alarms.restore(snapshot.alarms ?? []) };
}
