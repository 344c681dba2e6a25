// What a Sparkplug birth defines (spec 3.0 §6.4: names, aliases, datatypes) and how the metrics of
// an edge node or device become linewatch readings and state (docs/sparkplug.md#mapping).
import { DEVICE_STATES, DEVICE_TYPES, READING_NAME_PATTERN, STRATEGIES, type DeviceState, type DeviceType, type Strategy } from '../contracts/schemas.js';
import { isNumberType, type Metric, type MetricValue } from '../contracts/sparkplug/codec.js';
import type { SparkplugDeviceMapping } from './config.js';

export interface MetricDefinition {
  readonly name: string;
  readonly alias?: number;
  readonly type: string;
  value: MetricValue;
  /** Since its node or device died (NDEATH, DDEATH): the last value is no longer current. */
  stale: boolean;
}

/** The metrics of one birth, found by alias (NDATA/DDATA) or name. */
export class MetricTable {
  private readonly byName = new Map<string, MetricDefinition>();
  private readonly byAlias = new Map<number, MetricDefinition>();

  /** Builds the table of a birth; throws with the reason when the birth is malformed (a metric without name or datatype, an alias used twice). */
  constructor(metrics: readonly Metric[]) {
    for (const metric of metrics) {
      if (metric.name === undefined) throw new Error('a birth metric has no name');
      if (metric.type === undefined) throw new Error(`birth metric ${metric.name} has no datatype`);
      const definition: MetricDefinition = { name: metric.name, ...(metric.alias !== undefined ? { alias: metric.alias } : {}), type: metric.type, value: metric.value, stale: false };
      if (metric.alias !== undefined) {
        const taken = this.byAlias.get(metric.alias);
        if (taken && taken.name !== metric.name) throw new Error(`alias ${metric.alias} is given to both ${taken.name} and ${metric.name}`);
        this.byAlias.set(metric.alias, definition);
      }
      this.byName.set(metric.name, definition);
    }
  }

  /** The definition a data metric refers to: by alias when it has one, else by name. */
  resolve(metric: Metric): MetricDefinition | undefined {
    if (metric.alias !== undefined) return this.byAlias.get(metric.alias);
    return metric.name === undefined ? undefined : this.byName.get(metric.name);
  }

  get(name: string): MetricDefinition | undefined {
    return this.byName.get(name);
  }

  all(): IterableIterator<MetricDefinition> {
    return this.byName.values();
  }

  markStale(): void {
    for (const definition of this.byName.values()) definition.stale = true;
  }
}

/** Metrics of the Sparkplug machinery, not of the process: never readings. */
export function isControlMetric(name: string): boolean {
  return name === 'bdSeq' || name.startsWith('Node Control/') || name.startsWith('Device Control/') || name.startsWith('Properties/');
}

/** A Sparkplug metric name as a reading name: '/', spaces and other characters become '_' (`Motor/Temp` → `Motor_Temp`). */
export function readingNameOf(name: string): string | undefined {
  let reading = name.replace(/[^A-Za-z0-9_]/g, '_');
  if (/^[0-9]/.test(reading)) reading = `_${reading}`;
  reading = reading.slice(0, 64);
  return READING_NAME_PATTERN.test(reading) ? reading : undefined;
}

/** The metrics that describe a device's state rather than a reading. */
export interface StateMetricNames {
  state: string;
}
const DESCRIPTIVE = ['reason', 'strategy', 'type'];

/** The readings among `definitions` (numbers; booleans as 1/0), named as the mapping says. */
export function readingsOf(definitions: Iterable<MetricDefinition>, mapping: SparkplugDeviceMapping | undefined, names: StateMetricNames): Record<string, number> {
  const values: Record<string, number> = {};
  for (const definition of definitions) {
    const { name, value } = definition;
    if (isControlMetric(name) || name === names.state || DESCRIPTIVE.includes(name)) continue;
    const renamed = mapping?.readings[name];
    if (renamed === null) continue;
    const reading = renamed ?? readingNameOf(name);
    if (reading === undefined) continue;
    if (typeof value === 'boolean') values[reading] = value ? 1 : 0;
    else if (typeof value === 'number' && Number.isFinite(value) && isNumberType(definition.type)) values[reading] = value;
  }
  return values;
}

export interface StateFields {
  state: DeviceState;
  reason?: string;
  strategy?: Strategy;
}

/** The state the table says, when its state metric holds one of the linewatch states; a string naming the problem when it holds something else. */
export function stateOf(table: MetricTable, names: StateMetricNames): StateFields | string | undefined {
  const state = table.get(names.state)?.value;
  if (state === undefined || state === null) return undefined;
  if (typeof state !== 'string' || !(DEVICE_STATES as readonly string[]).includes(state)) return `metric ${names.state} holds ${JSON.stringify(state)}, not one of ${DEVICE_STATES.join(', ')}`;
  const reason = table.get('reason')?.value;
  const strategy = table.get('strategy')?.value;
  return {
    state: state as DeviceState,
    ...(typeof reason === 'string' && reason.length > 0 ? { reason: reason.slice(0, 256) } : {}),
    ...(typeof strategy === 'string' && (STRATEGIES as readonly string[]).includes(strategy) ? { strategy: strategy as Strategy } : {}),
  };
}

/** The device type: the mapping's, else the `type` metric when it names a linewatch type. */
export function typeOf(table: MetricTable, mapping: SparkplugDeviceMapping | undefined): DeviceType | undefined {
  if (mapping?.type) return mapping.type;
  const type = table.get('type')?.value;
  return typeof type === 'string' && (DEVICE_TYPES as readonly string[]).includes(type) ? (type as DeviceType) : undefined;
}

/** Whether a reported value is the written one (Float compared at float32 precision, as it travels). */
export function sameValue(type: string, written: number | boolean | string, reported: MetricValue): boolean {
  if (type === 'Float' && typeof written === 'number' && typeof reported === 'number') return Math.fround(written) === Math.fround(reported);
  return written === reported;
}
