// The Modbus register map shared by the gateway and the simulated Modbus devices: its schema,
// the read plan, and a reading's register word both ways.
import { describe, expect, it } from 'vitest';
import { DEVICE_STATES } from '../../../contracts/index.js';
import { decodeRegister, encodeRegister, modbusMapSchema, readPlan } from '../../../contracts/serial/index.js';

it('plans contiguous reads', () => {
  const map = modbusMapSchema.parse({ registers: [{ name: 'a', address: 0 }, { name: 'b', address: 10 }, { name: 'c', address: 200 }, { name: 'd', table: 'input', address: 3 }] });
  expect(readPlan(map)).toEqual([
    { table: 'holding', start: 0, length: 11 },
    { table: 'holding', start: 200, length: 1 },
    { table: 'input', start: 3, length: 1 },
  ]);
});

it('a state register maps onto the device states of the contract, and refuses any other', () => {
  const registers = [{ name: 'a', address: 0 }];
  expect(modbusMapSchema.parse({ registers, stateRegister: { address: 2, states: [...DEVICE_STATES] } }).stateRegister?.states).toEqual(DEVICE_STATES);
  const refused = modbusMapSchema.safeParse({ registers, stateRegister: { address: 2, states: ['RUNNING', 'ASLEEP'] } });
  expect(refused.success).toBe(false);
  expect(refused.error?.issues[0]?.path).toEqual(['stateRegister', 'states', 1]);
});

describe('register words', () => {
  it('a scaled reading goes into its word and comes back, two’s complement when signed', () => {
    expect(encodeRegister(40.5, { scale: 10 })).toBe(405);
    expect(decodeRegister(405, { scale: 10 })).toBe(40.5);
    expect(encodeRegister(-2.5, { scale: 10, signed: true })).toBe(0x10000 - 25);
    expect(decodeRegister(0x10000 - 25, { scale: 10, signed: true })).toBe(-2.5);
    // The same word read unsigned is a large positive number: the map's `signed` decides.
    expect(decodeRegister(0x10000 - 25, { scale: 10 })).toBe(6551.1);
  });

  it('a reading beyond the register’s range is clamped to it, not wrapped', () => {
    expect(encodeRegister(5000, { scale: 100 })).toBe(0xffff);
    expect(encodeRegister(-1, { scale: 1 })).toBe(0);
    expect(decodeRegister(encodeRegister(-5000, { scale: 10, signed: true }), { scale: 10, signed: true })).toBe(-3276.8);
    expect(decodeRegister(encodeRegister(5000, { scale: 10, signed: true }), { scale: 10, signed: true })).toBe(3276.7);
  });
});
