// Escaping for InfluxDB 1.x line protocol (`measurement,tag=v field="s" <ns>`), pure.
//
// The historian builds line protocol itself (historian/points.ts) and sends it through
// node-influx's request pool: node-influx's own escapers (`escape.measurement`, `escape.tag`)
// rewrite a `\'` sequence and leave newlines and a trailing backslash alone, so they are not used.
//
// What InfluxDB 1.x (checked against influxd 1.6.7 in test/historian/line-protocol.test.ts) reads:
// - measurement: `\,` and `\ ` are unescaped; tag keys, tag values and field keys also `\=`
//   (field keys also `\"`). A backslash before anything else is kept literally.
// - a newline ends the line, and there is no escape for it outside a quoted string;
// - a backslash directly before `,`, `=`, a space (or a `"` in a field key), or at the very end
//   of the name, escapes the separator that follows (`x\` + `,` reads as `x,` and then refuses the
//   line); doubling it does not help (`\\` is not unescaped there, and `x\\,` is refused too).
// So those characters cannot be written at all. They are replaced, each by U+FFFD (the Unicode
// replacement character), so what is stored says that something was there:
// - in a measurement, tag key, tag value or field key: CR and LF; a backslash directly before
//   `,`, `=`, a space, `"` or at the end; tabs and NULs at the start (InfluxDB skips them as
//   whitespace before a measurement or field key); and in a measurement a leading `#` (it would
//   make the line a comment);
// - string field values need no replacement: inside the quotes `\` and `"` are escaped, and CR
//   and LF are kept as they are.
// The ids that reach tags are restricted by the contract (contracts/schemas.ts), so only a hostile
// or foreign string (a dead letter's client id, a bypass of the schema) is ever replaced.

export const REPLACEMENT = '\uFFFD';

/** Replaces what line protocol cannot carry in a name (see above); everything else is kept. */
export function writableName(name: string): string {
  if (!UNWRITABLE.test(name)) return name;
  return name.replace(UNWRITABLE_G, REPLACEMENT).replace(LEADING_BLANKS, (blanks) => REPLACEMENT.repeat(blanks.length));
}

/** A measurement name: `,` and space escaped. */
export function escapeMeasurement(name: string): string {
  if (!MAY_NEED_WORK.test(name) && name[0] !== '#') return name;
  const writable = writableName(name).replace(LEADING_HASH, REPLACEMENT);
  return NEEDS_MEASUREMENT_ESCAPE.test(writable) ? writable.replace(NEEDS_MEASUREMENT_ESCAPE_G, '\\$&') : writable;
}

/** A tag key, tag value or field key: `,`, `=` and space escaped. */
export function escapeKey(name: string): string {
  if (!MAY_NEED_WORK.test(name)) return name;
  const writable = writableName(name);
  return NEEDS_KEY_ESCAPE.test(writable) ? writable.replace(NEEDS_KEY_ESCAPE_G, '\\$&') : writable;
}

/** A string field value, quoted: `\` and `"` escaped; it round-trips exactly. */
export function quoteString(value: string): string {
  return `"${NEEDS_STRING_ESCAPE.test(value) ? value.replace(NEEDS_STRING_ESCAPE_G, '\\$&') : value}"`;
}

// The fast path: a name with none of these (almost every one) is written as it is.
// eslint-disable-next-line no-control-regex -- NUL is one of the characters looked for
const MAY_NEED_WORK = /[,= "\\\r\n\t\u0000]/;
// CR, LF, a backslash followed by , = space " or the end; or a tab or NUL at the start.
// eslint-disable-next-line no-control-regex -- as above
const UNWRITABLE = /[\r\n]|\\(?=[,= "]|$)|^[\t\u0000]/;
// eslint-disable-next-line no-control-regex -- as above
const LEADING_BLANKS = /^[\t\u0000]+/;
const UNWRITABLE_G = /[\r\n]|\\(?=[,= "]|$)/g;
const LEADING_HASH = /^#/;
const NEEDS_MEASUREMENT_ESCAPE = /[, ]/;
const NEEDS_MEASUREMENT_ESCAPE_G = /[, ]/g;
const NEEDS_KEY_ESCAPE = /[,= ]/;
const NEEDS_KEY_ESCAPE_G = /[,= ]/g;
const NEEDS_STRING_ESCAPE = /["\\]/;
const NEEDS_STRING_ESCAPE_G = /["\\]/g;
