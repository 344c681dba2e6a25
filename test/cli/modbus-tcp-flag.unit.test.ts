// `linewatch simulate --modbus-tcp [DEVICE=][HOST:]PORT[/UNIT]`: what it means, and a precise error otherwise.
import { expect, it } from 'vitest';
import { parseModbusTcpFlag } from '../../cli/commands/simulate.js';

it('reads device, host, port and unit id, with conv-1, 127.0.0.1 (the transport default) and unit 1 when left out', () => {
  expect(parseModbusTcpFlag('1502')).toEqual({ device: 'conv-1', port: 1502, unitId: 1 });
  expect(parseModbusTcpFlag('st-3=0.0.0.0:1502/4')).toEqual({ device: 'st-3', host: '0.0.0.0', port: 1502, unitId: 4 });
  expect(parseModbusTcpFlag('conv-2=[::1]:1502')).toEqual({ device: 'conv-2', host: '::1', port: 1502, unitId: 1 });
});

it('refuses a port or unit id out of range, naming the flag and the form', () => {
  for (const bad of ['0', '70000', '1502/0', '1502/248', 'conv-1=', 'x:y']) expect(() => parseModbusTcpFlag(bad)).toThrow(/--modbus-tcp .*expected \[DEVICE=\]\[HOST:\]PORT\[\/UNIT\]/);
});
