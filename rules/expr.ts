// Rule conditions: parsed by jsep (a small, maintained expression parser that only builds an
// AST), then compiled once into plain closures by the whitelist below. User text is never handed
// to eval or new Function; only the node types and operators listed here exist, and property
// access reads own data properties only (no __proto__, constructor, prototype, no methods).
//
// A read of something that is not there (a reading the message lacks: `values.x` without `x`)
// is UNKNOWN, not undefined, and UNKNOWN propagates: through arithmetic, comparisons, `!`, calls
// and `?:`; `&&` and `||` are three-valued (false && unknown is false, true || unknown is true,
// otherwise unknown); `??` replaces it like undefined. A condition that comes out UNKNOWN is
// neither true nor false (`truth`): the rule's state stays as it was (missing ≠ false). A template
// renders it as "undefined"; a command parameter that is UNKNOWN is left out.
//
// Besides the numeric functions, the line functions upstream(id), downstream(id) and device(id)
// read the line of the scope's device through its LineView (rules/line-flow.ts), kept under a
// scope key no name can reach; without one (or of an UNKNOWN argument) they are UNKNOWN.
import jsep from 'jsep';

export type Scope = Record<string, unknown>;
export type Evaluator = (scope: Scope) => unknown;

/** What a read of a missing value evaluates to, and anything computed from it. */
export const UNKNOWN: unique symbol = Symbol('unknown');

/** A condition's result: true, false, or undefined when it read a missing value (unknown). */
export type Truth = boolean | undefined;

/** An evaluated condition as true, false or unknown (undefined). */
export function truth(value: unknown): Truth {
  return value === UNKNOWN ? undefined : Boolean(value);
}

export class ExpressionError extends Error {
  override name = 'ExpressionError';
}

export interface CompiledExpression {
  source: string;
  evaluate: Evaluator;
  /** Top-level names the expression reads, e.g. `values`, `state` — checked against the rule's scope at load. */
  names: Set<string>;
  /** What it asks of its line: the line functions it calls, the device ids written as literals in `device("…")`. */
  reads: LineReads;
}

/**
 * What an expression asks about the line of the device it reads (rules/line-flow.ts answers):
 * its neighbours in the line's flow order, and another device's latest state and readings.
 * `upstream`/`downstream`: the neighbour's id; `null` when the device is the first (last) of its
 * flow (there is none, which is known); UNKNOWN when the device is in no flow of the line.
 * `device`: that device's scope (`state`, `values`, …, as `deviceScope`), UNKNOWN if never heard from.
 */
export interface LineView {
  upstream(device: string): string | null | typeof UNKNOWN;
  downstream(device: string): string | null | typeof UNKNOWN;
  device(device: string): Scope | typeof UNKNOWN;
}

/** The scope key of the line view: not an identifier, so no expression can read it as a name. */
export const LINE_VIEW_KEY = '#line';

export const LINE_FUNCTIONS = ['upstream', 'downstream', 'device'] as const;
export type LineFunction = (typeof LINE_FUNCTIONS)[number];

export interface LineReads {
  functions: Set<LineFunction>;
  /** `device("conv-1")`: the literal ids, checked against the line's devices at load when they are known. */
  devices: Set<string>;
}

function isLineFunction(name: string | undefined): name is LineFunction {
  return (LINE_FUNCTIONS as readonly (string | undefined)[]).includes(name);
}

/** One line function applied to its evaluated argument: of a missing one, unknown; of none (null), none for a neighbour and unknown for `device` (no device to read). */
function callLine(fn: LineFunction, scope: Scope, arg: unknown): unknown {
  const view = scope[LINE_VIEW_KEY] as LineView | undefined;
  if (arg === UNKNOWN || !view) return UNKNOWN;
  if (arg === null || arg === undefined) return fn === 'device' ? UNKNOWN : null;
  return typeof arg === 'string' ? view[fn](arg) : UNKNOWN;
}

const FUNCTIONS: Record<string, (...args: number[]) => number> = {
  abs: Math.abs,
  min: (...a) => Math.min(...a),
  max: (...a) => Math.max(...a),
  round: Math.round,
  floor: Math.floor,
  ceil: Math.ceil,
  sqrt: Math.sqrt,
  clamp: (x, lo, hi) => Math.min(Math.max(x!, lo!), hi!),
};

export const EXPRESSION_FUNCTIONS = Object.keys(FUNCTIONS);

const FORBIDDEN_PROPERTIES = new Set(['__proto__', 'constructor', 'prototype']);

type Binary = (a: unknown, b: unknown) => unknown;
const BINARY: Record<string, Binary> = {
  '+': (a, b) => (a as number) + (b as number),
  '-': (a, b) => (a as number) - (b as number),
  '*': (a, b) => (a as number) * (b as number),
  '/': (a, b) => (a as number) / (b as number),
  '%': (a, b) => (a as number) % (b as number),
  // `==` is strict: rule authors compare states and numbers, never want coercion.
  '==': (a, b) => a === b,
  '===': (a, b) => a === b,
  '!=': (a, b) => a !== b,
  '!==': (a, b) => a !== b,
  '<': (a, b) => (a as number) < (b as number),
  '<=': (a, b) => (a as number) <= (b as number),
  '>': (a, b) => (a as number) > (b as number),
  '>=': (a, b) => (a as number) >= (b as number),
};

/** Reads an own data property of a plain value; anything else (missing, inherited, forbidden, a method, a read of UNKNOWN) is UNKNOWN. */
function getOwn(obj: unknown, key: unknown): unknown {
  if (key === UNKNOWN) return UNKNOWN;
  const k = String(key);
  return FORBIDDEN_PROPERTIES.has(k) ? UNKNOWN : getOwnAllowed(obj, k);
}

/** getOwn for a key already known not to be forbidden (a name written in the expression: checked when compiled). */
function getOwnAllowed(obj: unknown, key: string): unknown {
  if (obj === null || typeof obj !== 'object' || !Object.hasOwn(obj, key)) return UNKNOWN;
  const v = (obj as Record<string, unknown>)[key];
  return typeof v === 'function' ? UNKNOWN : v;
}

/** Compiles `source` once; throws ExpressionError naming what is not allowed. */
export function compileExpression(source: string): CompiledExpression {
  let ast: jsep.Expression;
  try {
    ast = jsep(source);
  } catch (err) {
    throw new ExpressionError(`cannot parse "${source}": ${(err as Error).message}`);
  }
  const names = new Set<string>();
  const reads: LineReads = { functions: new Set(), devices: new Set() };
  const evaluate = build(ast, source, names, reads);
  return { source, evaluate, names, reads };
}

function build(node: jsep.Expression, source: string, names: Set<string>, reads: LineReads): Evaluator {
  const fail = (what: string): never => {
    throw new ExpressionError(`"${source}": ${what}`);
  };
  switch (node.type) {
    case 'Literal': {
      const value = (node as jsep.Literal).value;
      if (value instanceof RegExp) fail('regular expressions are not supported');
      return () => value;
    }
    case 'Identifier': {
      const name = (node as jsep.Identifier).name;
      if (name === 'true') return () => true;
      if (name === 'false') return () => false;
      if (name === 'null') return () => null;
      if (FORBIDDEN_PROPERTIES.has(name)) fail(`"${name}" is not allowed`);
      names.add(name);
      return (scope) => getOwnAllowed(scope, name);
    }
    case 'MemberExpression': {
      const m = node as jsep.MemberExpression;
      const object = build(m.object, source, names, reads);
      if (!m.computed) {
        const key = (m.property as jsep.Identifier).name;
        if (FORBIDDEN_PROPERTIES.has(key)) fail(`property "${key}" is not allowed`);
        return (scope) => getOwnAllowed(object(scope), key);
      }
      const property = build(m.property, source, names, reads);
      return (scope) => getOwn(object(scope), property(scope));
    }
    case 'UnaryExpression': {
      const u = node as jsep.UnaryExpression;
      const arg = build(u.argument, source, names, reads);
      switch (u.operator) {
        case '!':
          return (scope) => {
            const value = arg(scope);
            return value === UNKNOWN ? UNKNOWN : !value;
          };
        case '-':
          return (scope) => {
            const value = arg(scope);
            return value === UNKNOWN ? UNKNOWN : -(value as number);
          };
        case '+':
          return (scope) => {
            const value = arg(scope);
            return value === UNKNOWN ? UNKNOWN : +(value as number);
          };
        default:
          return fail(`operator "${u.operator}" is not supported (use ! - +)`);
      }
    }
    case 'BinaryExpression': {
      const b = node as jsep.BinaryExpression;
      const left = build(b.left, source, names, reads);
      const right = build(b.right, source, names, reads);
      if (b.operator === '&&')
        return (scope) => {
          const value = left(scope);
          if (value === UNKNOWN) return andUnknown(right(scope));
          return value ? right(scope) : value;
        };
      if (b.operator === '||')
        return (scope) => {
          const value = left(scope);
          if (value === UNKNOWN) return orUnknown(right(scope));
          return value ? value : right(scope);
        };
      if (b.operator === '??')
        return (scope) => {
          const value = left(scope);
          return value === UNKNOWN || value === undefined || value === null ? right(scope) : value;
        };
      const op = BINARY[b.operator];
      if (!op) fail(`operator "${b.operator}" is not supported (use + - * / % == != < <= > >= && || ??)`);
      // A literal side (`values.temp > 80`) is neither read again nor checked for UNKNOWN.
      if (b.right.type === 'Literal') {
        const constant = right({});
        return (scope) => {
          const value = left(scope);
          return value === UNKNOWN ? UNKNOWN : op!(value, constant);
        };
      }
      return (scope) => {
        const a = left(scope);
        if (a === UNKNOWN) return UNKNOWN;
        const value = right(scope);
        return value === UNKNOWN ? UNKNOWN : op!(a, value);
      };
    }
    case 'ConditionalExpression': {
      const c = node as jsep.ConditionalExpression;
      const test = build(c.test, source, names, reads);
      const yes = build(c.consequent, source, names, reads);
      const no = build(c.alternate, source, names, reads);
      return (scope) => {
        const condition = test(scope);
        if (condition === UNKNOWN) return UNKNOWN;
        return condition ? yes(scope) : no(scope);
      };
    }
    case 'CallExpression': {
      const call = node as jsep.CallExpression;
      const callee = call.callee.type === 'Identifier' ? (call.callee as jsep.Identifier).name : undefined;
      if (isLineFunction(callee)) {
        if (call.arguments.length !== 1) fail(`${callee}() takes one device id, e.g. ${callee}(device)`);
        const argument = call.arguments[0]!;
        if (callee === 'device' && argument.type === 'Literal' && typeof (argument as jsep.Literal).value === 'string') reads.devices.add((argument as jsep.Literal).value as string);
        reads.functions.add(callee);
        const arg = build(argument, source, names, reads);
        return (scope) => callLine(callee, scope, arg(scope));
      }
      const fn = callee !== undefined && Object.hasOwn(FUNCTIONS, callee) ? FUNCTIONS[callee] : undefined;
      if (!fn) fail(`only these functions can be called: ${[...EXPRESSION_FUNCTIONS, ...LINE_FUNCTIONS].join(', ')}`);
      const args = call.arguments.map((a) => build(a, source, names, reads));
      return (scope) => {
        const values = args.map((a) => a(scope));
        return values.includes(UNKNOWN) ? UNKNOWN : fn!(...(values as number[]));
      };
    }
    default:
      return fail(`${node.type} is not supported`);
  }
}

/** `UNKNOWN && right`: false if `right` is falsy (whatever the left side), else UNKNOWN. */
function andUnknown(right: unknown): unknown {
  return right !== UNKNOWN && !right ? right : UNKNOWN;
}

/** `UNKNOWN || right`: `right` if it is truthy (whatever the left side), else UNKNOWN. */
function orUnknown(right: unknown): unknown {
  return right !== UNKNOWN && right ? right : UNKNOWN;
}

export interface CompiledTemplate {
  render: (scope: Scope) => string;
  /** The text, or undefined when a placeholder has no value (unknown, undefined or null): a command target that is none. */
  renderKnown: (scope: Scope) => string | undefined;
  /** Top-level names its placeholders read, checked against the rule's scope at load like an expression's. */
  names: Set<string>;
  reads: LineReads;
}

/** A message template: literal text with `{expression}` placeholders, e.g. "{device} at {values.temp} °C". */
export function parseTemplate(template: string): CompiledTemplate {
  const parts: (string | Evaluator)[] = [];
  const names = new Set<string>();
  const reads: LineReads = { functions: new Set(), devices: new Set() };
  let rest = template;
  for (;;) {
    const open = rest.indexOf('{');
    if (open < 0) break;
    const close = rest.indexOf('}', open);
    if (close < 0) throw new ExpressionError(`template "${template}": "{" without a closing "}"`);
    parts.push(rest.slice(0, open));
    const placeholder = compileExpression(rest.slice(open + 1, close));
    for (const name of placeholder.names) names.add(name);
    for (const fn of placeholder.reads.functions) reads.functions.add(fn);
    for (const id of placeholder.reads.devices) reads.devices.add(id);
    parts.push(placeholder.evaluate);
    rest = rest.slice(close + 1);
  }
  parts.push(rest);
  const show = (v: unknown): string => (v === UNKNOWN ? 'undefined' : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : String(v));
  const render = (scope: Scope): string => parts.map((p) => (typeof p === 'string' ? p : show(p(scope)))).join('');
  const renderKnown = (scope: Scope): string | undefined => {
    let text = '';
    for (const p of parts) {
      const v = typeof p === 'string' ? p : p(scope);
      if (v === UNKNOWN || v === undefined || v === null) return undefined;
      text += typeof p === 'string' ? p : show(v);
    }
    return text;
  };
  return { render, renderKnown, names, reads };
}

export function compileTemplate(template: string): (scope: Scope) => string {
  return parseTemplate(template).render;
}
