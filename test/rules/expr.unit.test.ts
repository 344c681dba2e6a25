import { describe, expect, it } from 'vitest';
import { compileExpression, compileTemplate, truth, UNKNOWN } from '../../rules/expr.js';

const run = (source: string, scope: Record<string, unknown> = {}): unknown => compileExpression(source).evaluate(scope);

describe('rule expressions', () => {
  it('does comparisons, boolean logic and arithmetic', () => {
    const scope = { values: { temp: 82.5, speed: 40 }, state: 'RUNNING' };
    expect(run('values.temp > 80 && state == "RUNNING"', scope)).toBe(true);
    expect(run('values.temp > 90 || !(values.speed >= 40)', scope)).toBe(false);
    expect(run('values.speed * 0.8 + 2 - 1', scope)).toBeCloseTo(33);
    expect(run('values.speed % 7', scope)).toBe(5);
    expect(run('state != "FAULT" ? 1 : 2', scope)).toBe(1);
    expect(run('max(values.temp, 100) - min(1, 2) + abs(-3) + round(1.6)', scope)).toBe(104);
    expect(run('clamp(values.speed * 2, 10, 50)', scope)).toBe(50);
    expect(run('values["speed"] == 40', scope)).toBe(true);
    expect(run('values.missing ?? 7', scope)).toBe(7);
  });

  it('uses strict equality (no type coercion)', () => {
    expect(run('x == "1"', { x: 1 })).toBe(false);
    expect(run('x == 1', { x: 1 })).toBe(true);
  });

  it('reads only own data properties: no prototype, constructor or methods', () => {
    expect(run('values.toString', { values: {} })).toBe(UNKNOWN);
    expect(run('values.hasOwnProperty', { values: {} })).toBe(UNKNOWN);
    expect(run('values["__pro" + "to__"]', { values: {} })).toBe(UNKNOWN);
    expect(() => compileExpression('values.constructor')).toThrow(/constructor.*not allowed/);
    expect(() => compileExpression('__proto__')).toThrow(/not allowed/);
    expect(() => compileExpression('values.__proto__.x')).toThrow(/not allowed/);
  });

  it('refuses calls other than the listed functions, this, and assignment-like syntax', () => {
    expect(() => compileExpression('process.exit(1)')).toThrow(/only these functions can be called: abs/);
    expect(() => compileExpression('values.temp.toFixed(2)')).toThrow(/only these functions/);
    expect(() => compileExpression('this')).toThrow(/ThisExpression is not supported/);
    expect(() => compileExpression('a, b')).toThrow(/not supported/);
    expect(() => compileExpression('a | b')).toThrow(/operator "\|" is not supported/);
    expect(() => compileExpression('values.temp >')).toThrow(/cannot parse/);
  });

  it('makes a read of a missing value unknown, not false: it propagates, && and || are three-valued, ?? replaces it', () => {
    const scope = { values: { y: 9, zero: 0 }, avg: undefined };
    const condition = (source: string): boolean | undefined => truth(run(source, scope));
    expect(condition('values.x > 5')).toBeUndefined();
    expect(condition('!(values.x > 5)')).toBeUndefined();
    expect(condition('values.x == undefinedName')).toBeUndefined();
    expect(condition('abs(values.x) > 1 || -values.x > 1 || values.x * 2 > 1')).toBeUndefined();
    expect(condition('(values.x > 5 ? true : false)')).toBeUndefined();
    expect(condition('values.x > 5 && values.y > 5')).toBeUndefined();
    expect(condition('values.x > 5 && values.y < 5')).toBe(false);
    expect(condition('values.y < 5 && values.x > 5')).toBe(false);
    expect(condition('values.x > 5 || values.y > 5')).toBe(true);
    expect(condition('values.y > 5 || values.x > 5')).toBe(true);
    expect(condition('values.x > 5 || values.y < 5')).toBeUndefined();
    expect(condition('(values.x ?? 0) > 5')).toBe(false);
    expect(condition('values.zero')).toBe(false); // present and falsy is known
    expect(condition('avg > 5')).toBe(false); // a declared field that is undefined (an empty window) is known too
    expect(compileTemplate('x {values.x}')(scope)).toBe('x undefined');
  });

  it('lists the top-level names an expression reads', () => {
    expect([...compileExpression('values.temp > limit && state == "X"').names].sort()).toEqual(['limit', 'state', 'values']);
  });

  it('fills message templates', () => {
    const t = compileTemplate('{device} motor at {values.temp} °C (limit {80})');
    expect(t({ device: 'conv-2', values: { temp: 92.14 } })).toBe('conv-2 motor at 92.1 °C (limit 80)');
    expect(() => compileTemplate('oops {device')).toThrow(/without a closing/);
  });
});
