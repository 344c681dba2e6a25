// Parsers for command-line flag values, shared by the subcommands; a bad value is a UserError
// that quotes it and says what is expected.
import { isValidId } from '../contracts/topics.js';
import { parseBrokerUrls } from '../bus/mqtt-connect.js';
import { parseTime, TIME_FORMS } from '../lib/time-arg.js';
import { UserError } from './errors.js';

export function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UserError(`"${value}" is not a port number (0–65535; 0 picks a free port)`);
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UserError(`"${value}" is not a positive number`);
  return n;
}

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`"${value}" is not a whole number ≥ 1`);
  return n;
}

/** A comma-separated list of line ids (`--lines A,B`). */
export function lineList(value: string): string[] {
  const lines = value.split(',').map((line) => line.trim()).filter((line) => line !== '');
  const bad = lines.filter((line) => !isValidId(line));
  if (lines.length === 0 || bad.length > 0) throw new UserError(`"${value}" is not a list of line ids: give them comma-separated, e.g. --lines A,B (letters, digits, - and _; _dead for dead letters)`);
  return lines;
}

/** --broker URL[,URL…]: the brokers a service connects to, first that answers, the next when it goes away; each checked (bus/mqtt-connect.ts). */
export function brokerList(value: string): string {
  try {
    parseBrokerUrls(value, '--broker');
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  return value;
}

/** A time flag (`--from`, `--to`) in the forms of lib/time-arg.ts: now, -6h, epoch ms, ISO; relative ones counted back from `now`. */
export function timeFlag(flag: string, value: string, now: number): number {
  const parsed = parseTime(value, now);
  if (parsed === undefined) throw new UserError(`${flag} ${value}: expected ${TIME_FORMS}`);
  return parsed;
}
