// The `lines:` section of a rules folder (docs/rules.md#rules-for-a-whole-line): each line's flow
// order, validated entry by entry (duplicates, a cycle, and with a scenario: devices it lacks and
// an order it does not simulate), and what the folder knows of its lines when rules are checked.
import { parseDocument } from 'yaml';
import type { FieldPath, FileLocator, LoadError } from './locate.js';
import { listDevices, type KnownDevices, type LineKnowledge } from './rule-expressions.js';
import { lineSchema, type LineDefinition } from './schema.js';

const LINE_ID = /^[A-Za-z0-9_-]{1,64}$/;

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** A file's `lines:` as written: the entries without errors, and the errors of the others (at their keys' lines). */
export function parseLines(raw: unknown, locator: FileLocator, scenario?: KnownDevices): { lines?: Map<string, LineDefinition>; broken: boolean; errors: LoadError[] } {
  if (raw === undefined) return { broken: false, errors: [] };
  const at = (path: FieldPath, message: string): LoadError => ({ file: locator.file, line: locator.lineOf(path), message });
  const entries = record(raw);
  if (!entries) return { broken: true, errors: [at(['lines'], 'lines: expected a map of line id → { flow: [device, …] }, e.g. lines: { A: { flow: [st-1, st-2, st-3] } }')] };
  const lines = new Map<string, LineDefinition>();
  const errors: LoadError[] = [];
  for (const [line, entry] of Object.entries(entries)) {
    const parsed = lineSchema.safeParse(entry);
    const lineErrors = parsed.success ? againstScenario(line, parsed.data, scenario).map(([path, message]) => at(path, message)) : locator.issues(parsed.error, ['lines', line]);
    if (!LINE_ID.test(line)) lineErrors.push({ file: locator.file, line: locator.lineOfKey(['lines'], line), message: `lines.${line}: expected a line id: 1–64 letters, digits, _ or -` });
    errors.push(...lineErrors);
    if (lineErrors.length === 0 && parsed.success) lines.set(line, parsed.data);
  }
  return { lines, broken: errors.length > 0, errors };
}

/**
 * With a scenario (`rules check --scenario`, `rules test`), the entry of its line must name its
 * devices, and the flow must follow the order the simulator runs (its stations, st-1 → st-2 → …):
 * rules tested on another order than the one simulated would prove nothing.
 */
function againstScenario(line: string, definition: LineDefinition, scenario: KnownDevices | undefined): [FieldPath, string][] {
  if (!scenario || scenario.line !== line) return [];
  const errors: [FieldPath, string][] = [];
  const listed = listDevices(scenario.ids);
  for (const key of ['flow', 'devices'] as const) {
    (definition[key] ?? []).forEach((id, i) => {
      if (!scenario.ids.has(id)) errors.push([['lines', line, key, i], `lines.${line}.${key}.${i}: no device "${id}" on line ${line} of the scenario; its devices are ${listed}`]);
    });
  }
  const simulated = scenario.flow;
  if (!simulated) return errors;
  const position = new Map(simulated.map((id, i) => [id, i]));
  const inFlow = definition.flow.filter((id) => position.has(id));
  for (let i = 1; i < inFlow.length; i++) {
    const [before, after] = [inFlow[i - 1]!, inFlow[i]!];
    if (position.get(after) === position.get(before)! + 1) continue;
    errors.push([['lines', line, 'flow'], `lines.${line}.flow: ${before} → ${after} here, but the scenario's line runs ${simulated.join(' → ')}; state the order the line has`]);
    break;
  }
  return errors;
}

/** The `lines:` value of each file's text, as written (a file that is no YAML map has none). */
export function linesOfFolder(texts: readonly string[]): unknown[] {
  return texts.flatMap((text) => {
    const doc = parseDocument(text);
    if (doc.errors.length > 0) return [];
    const lines = record(doc.toJS())?.lines;
    return lines === undefined ? [] : [lines];
  });
}

/**
 * What rules are checked against: the lines whose flow the folder states (even one with errors, so
 * a rule reading it is not reported twice), and the lines whose devices are known — the scenario's
 * line, and each `lines:` entry that lists its `devices` (with its flow).
 */
export function lineKnowledge(rawLines: readonly unknown[], scenario?: KnownDevices): LineKnowledge {
  const flowLines = new Set<string>();
  const devices: KnownDevices[] = scenario ? [scenario] : [];
  for (const raw of rawLines) {
    for (const [line, entry] of Object.entries(record(raw) ?? {})) {
      flowLines.add(line);
      const parsed = lineSchema.safeParse(entry);
      if (!parsed.success || !parsed.data.devices || line === scenario?.line || devices.some((known) => known.line === line)) continue;
      devices.push({ line, ids: new Set([...parsed.data.flow, ...parsed.data.devices]) });
    }
  }
  return { devices, flowLines };
}
