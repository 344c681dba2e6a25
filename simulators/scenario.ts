// Scenario files: a line layout plus faults injected at given simulated times.
//
//   layout: { conveyors: 3, stations: 5, sensors: 2 }
//   events:
//     - at: 30s
//       overheat: { device: conv-2, heat: 60, duration: 5m }
//     - at: 1m
//       jam: { station: st-3, duration: 45s }
//
// Parsed with `yaml`, validated with zod; every error names the key, e.g.
// `demo.yaml: events.1.jam.duration: expected a duration like 45s, 2m or 500ms`.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ID_PATTERN } from '../contracts/topics.js';
import { STRATEGIES } from '../contracts/schemas.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `30s`, `2m`, `500ms`, `1h` or a number of seconds → milliseconds. */
export const durationSchema = z
  .union([z.number().nonnegative(), z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, 'expected a duration like 45s, 2m or 500ms')])
  .transform((v) => {
    if (typeof v === 'number') return Math.round(v * 1000);
    const [, num, unit] = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v)!;
    return Math.round(Number(num) * UNIT_MS[unit!]!);
  });

const deviceId = z.string().regex(ID_PATTERN, 'expected a device id (letters, digits, - and _)');

export const EVENT_KINDS = ['overheat', 'jam', 'drift', 'silence', 'offline', 'garbage', 'maintenance'] as const;
export type ScenarioEventKind = (typeof EVENT_KINDS)[number];

const eventSchema = z
  .strictObject({
    at: durationSchema.describe('simulated time since the start'),
    /** A conveyor's motor runs `heat` °C hotter at the nominal 40 m/min (proportionally less when slower). */
    overheat: z.strictObject({ device: deviceId, heat: z.number().positive().default(60), duration: durationSchema.optional() }).optional(),
    /** A station stops with a jam (state FAULT) for `duration`, or until reset_fault. */
    jam: z.strictObject({ station: deviceId, duration: durationSchema }).optional(),
    /** A sensor reading drifts by `rate` units per minute. */
    drift: z.strictObject({ device: deviceId, reading: z.enum(['temperature', 'humidity']).default('temperature'), rate: z.number(), duration: durationSchema.optional() }).optional(),
    /** The device keeps its connection but sends nothing. */
    silence: z.strictObject({ device: deviceId, duration: durationSchema.optional() }).optional(),
    /** The device drops off the network abruptly (MQTT: its will fires). */
    offline: z.strictObject({ device: deviceId, duration: durationSchema.optional() }).optional(),
    /** Random bytes written on a serial device's line (by device id or serial path). */
    garbage: z.strictObject({ port: z.string().min(1), bytes: z.number().int().min(1).max(65_536) }).optional(),
    /** A station goes into MAINTENANCE. */
    maintenance: z.strictObject({ station: deviceId, duration: durationSchema }).optional(),
  })
  .superRefine((e, ctx) => {
    const present = EVENT_KINDS.filter((k) => e[k] !== undefined);
    if (present.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: `each event needs exactly one of ${EVENT_KINDS.join(', ')} (found ${present.length === 0 ? 'none' : present.join(', ')})`,
      });
    }
  });

export const layoutSchema = z.strictObject({
  conveyors: z.number().int().min(1).max(100_000).default(3),
  stations: z.number().int().min(1).max(100_000).default(5),
  sensors: z.number().int().min(0).max(100_000).default(2),
  /** Parts a buffer between two stations holds. */
  bufferCapacity: z.number().int().min(1).max(1000).default(4),
});
export type Layout = z.infer<typeof layoutSchema>;

export const scenarioSchema = z.strictObject({
  name: z.string().default('scenario'),
  description: z.string().optional(),
  layout: layoutSchema.prefault({}),
  /** Initial line speed setpoint, m/min. */
  speed: z.number().min(0).max(60).default(40),
  strategy: z.enum(STRATEGIES).default('max-throughput'),
  events: z.array(eventSchema).default([]),
});
export type Scenario = z.infer<typeof scenarioSchema>;
export type ScenarioEvent = Scenario['events'][number];

export class ScenarioError extends Error {
  override name = 'ScenarioError';
  readonly userFacing = true;
}

/** Validates an already-parsed scenario object; `source` names it in errors. */
export function parseScenario(raw: unknown, source = 'scenario'): Scenario {
  const parsed = scenarioSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ScenarioError(`${source}: invalid scenario: ${lines.join('; ')}. See docs/simulators.md for the scenario format.`);
  }
  return parsed.data;
}

export function parseScenarioYaml(text: string, source = 'scenario'): Scenario {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ScenarioError(`${source}: YAML syntax error at line ${e.linePos?.[0]?.line ?? '?'}: ${e.message}`);
  }
  return parseScenario(doc.toJS(), source);
}

export function loadScenarioFile(file: string): Scenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ScenarioError(`cannot read scenario file ${file}: ${(err as Error).message}; pass an existing YAML file with --scenario`);
  }
  return parseScenarioYaml(text, file);
}

/** Path of the built-in demo scenario: next to this module in the source tree, or beside dist/. */
export const DEMO_SCENARIO_FILE = [new URL('./scenarios/demo.yaml', import.meta.url), new URL('../../simulators/scenarios/demo.yaml', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((f) => existsSync(f)) ?? fileURLToPath(new URL('./scenarios/demo.yaml', import.meta.url));

/**
 * The demo line: a line controller, 3 conveyors, 5 stations and 2 sensors, with conv-2 overheating,
 * a jam at st-3 (which starves st-4 and st-5 and blocks st-1 and st-2) and env-2 going silent.
 */
export function loadDemoScenario(): Scenario {
  return loadScenarioFile(DEMO_SCENARIO_FILE);
}

/** Checks that every event names a device of the right kind on this layout. */
export function checkScenarioDevices(s: Scenario, deviceIds: ReadonlySet<string>, source = 'scenario'): void {
  s.events.forEach((e, i) => {
    const refs: [string, string][] = [];
    if (e.overheat) refs.push(['overheat.device', e.overheat.device]);
    if (e.jam) refs.push(['jam.station', e.jam.station]);
    if (e.drift) refs.push(['drift.device', e.drift.device]);
    if (e.silence) refs.push(['silence.device', e.silence.device]);
    if (e.offline) refs.push(['offline.device', e.offline.device]);
    if (e.maintenance) refs.push(['maintenance.station', e.maintenance.station]);
    for (const [key, id] of refs) {
      if (!deviceIds.has(id)) {
        throw new ScenarioError(`${source}: invalid scenario: events.${i}.${key}: no device "${id}" on this line; devices are line-ctl, conv-N, st-N and env-N within the layout`);
      }
    }
    if (e.overheat && !e.overheat.device.startsWith('conv-')) throw new ScenarioError(`${source}: invalid scenario: events.${i}.overheat.device: "${e.overheat.device}" is not a conveyor (conv-N)`);
    if (e.jam && !e.jam.station.startsWith('st-')) throw new ScenarioError(`${source}: invalid scenario: events.${i}.jam.station: "${e.jam.station}" is not a station (st-N)`);
    if (e.maintenance && !e.maintenance.station.startsWith('st-')) throw new ScenarioError(`${source}: invalid scenario: events.${i}.maintenance.station: "${e.maintenance.station}" is not a station (st-N)`);
    if (e.drift && !e.drift.device.startsWith('env-')) throw new ScenarioError(`${source}: invalid scenario: events.${i}.drift.device: "${e.drift.device}" is not a sensor (env-N)`);
  });
}
