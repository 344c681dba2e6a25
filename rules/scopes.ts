// The scopes rule expressions read (docs/rules.md#expressions): the one of a message, the one
// of a timer that fires without a message, and lineCount's count of matching devices.
import type { DeviceEvent, DeviceRecord, DeviceTable } from './device-table.js';
import { deviceScope } from './device-table.js';
import { LINE_VIEW_KEY, truth, type Scope } from './expr.js';
import type { Instance } from './instance-state.js';
import type { LineViews } from './line-flow.js';
import type { CompiledRule } from './load.js';
import { aggregateInto } from './windows.js';

/** The scope a message's rules read; the window and line-count fields are filled per rule just before it reads them. */
export function messageScope(event: DeviceEvent, record: DeviceRecord, views: LineViews): Scope {
  return {
    device: record.device,
    line: record.line,
    kind: event.kind,
    ts: event.payload.ts,
    values: event.kind === 'telemetry' ? event.payload.values : record.values,
    last: record.values,
    state: event.kind === 'state' ? event.payload.state : record.state,
    previous: record.enteredFrom,
    reason: record.reason,
    status: record.status,
    type: record.type,
    // Declared here so every scope has one shape.
    avg: undefined,
    min: undefined,
    max: undefined,
    count: undefined,
    rate: undefined,
    delta: undefined,
    matching: undefined,
    [LINE_VIEW_KEY]: views.of(record.line),
  };
}

/** How many of the line's devices that the rule matches satisfy `lineCount.where`. */
export function countMatching(rule: CompiledRule, line: string, devices: DeviceTable, views: LineViews): number {
  let matching = 0;
  const view = views.of(line);
  for (const record of devices.onLine(line)) {
    if (!rule.deviceMatchers.some((matcher) => matcher.test(record.device)) || (rule.type && record.type !== rule.type)) continue;
    // A device whose `where` reads a value it never reported is not counted.
    if (rule.lineCount && truth(rule.lineCount.where(deviceScope(record, view))) === true) matching++;
  }
  return matching;
}

/** The scope to act in when a timer (not a message) fires. */
export function timerScope(rule: CompiledRule, instance: Instance, devices: DeviceTable, views: LineViews): Scope {
  const record = instance.device ? devices.get(instance.line, instance.device) : undefined;
  const view = views.of(instance.line);
  let scope: Scope = record ? deviceScope(record, view) : { line: instance.line, device: instance.device, values: {}, last: {}, [LINE_VIEW_KEY]: view };
  if (rule.window) aggregateInto(instance.window, scope);
  if (rule.lineCount) scope.matching = countMatching(rule, instance.line, devices, views);
  if (rule.absent) scope = { ...scope, device: instance.device };
  return scope;
}
