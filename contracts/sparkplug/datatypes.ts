// The Sparkplug B datatypes (spec 3.0 §6.4.16) by what their values are: a contract without the
// codec, for whoever reads decoded metrics (the host, the historian's sparkplug_metrics).

/** The Sparkplug B datatypes linewatch reads as scalar values (the rest are stored by name only). */
export const SCALAR_TYPES = ['Int8', 'Int16', 'Int32', 'Int64', 'UInt8', 'UInt16', 'UInt32', 'UInt64', 'Float', 'Double', 'Boolean', 'String', 'DateTime', 'Text', 'UUID'] as const;
export type ScalarType = (typeof SCALAR_TYPES)[number];
export const INTEGER_TYPES: ReadonlySet<string> = new Set(['Int8', 'Int16', 'Int32', 'Int64', 'UInt8', 'UInt16', 'UInt32', 'UInt64', 'DateTime']);
export const NUMBER_TYPES: ReadonlySet<string> = new Set([...INTEGER_TYPES, 'Float', 'Double']);
const STRING_TYPES: ReadonlySet<string> = new Set(['String', 'Text', 'UUID']);

/** Whether a datatype holds numbers (integers or floats), booleans or text. */
export function isNumberType(type: string): boolean {
  return NUMBER_TYPES.has(type);
}
export function isIntegerType(type: string): boolean {
  return INTEGER_TYPES.has(type);
}
export function isStringType(type: string): boolean {
  return STRING_TYPES.has(type);
}
