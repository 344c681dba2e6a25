// Parsers for command-line flag values, shared by the subcommands; a bad value is a UserError
// that quotes it and says what is expected.
import { parseBrokerUrls } from '../bus/mqtt-connect.js';
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

/** --broker URL[,URL…]: the brokers a service connects to, first that answers, the next when it goes away; each checked (bus/mqtt-connect.ts). */
export function brokerList(value: string): string {
  try {
    parseBrokerUrls(value, '--broker');
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  return value;
}
