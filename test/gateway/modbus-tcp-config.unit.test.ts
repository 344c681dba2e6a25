// gateway.ports entries for Modbus TCP: validated once at start, with errors naming the key and the fix.
import { expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../config/load.js';

const map = { registers: [{ name: 'speed', address: 0 }] };
const errorOf = (ports: unknown[]): string => {
  try {
    parseConfig({ gateway: { ports } });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected the config to be refused');
};

it('takes a tcp port with its defaults: tcpPort 502, connectTimeoutMs 3000, offlineAfterFailures 3', () => {
  const [port] = parseConfig({ gateway: { ports: [{ device: 'A/plc-1', codec: 'modbus', transport: 'tcp', host: '10.0.0.5', modbus: map }] } }).gateway.ports;
  expect(port).toMatchObject({ transport: 'tcp', host: '10.0.0.5', tcpPort: 502, connectTimeoutMs: 3000, modbus: { unitId: 1, offlineAfterFailures: 3 } });
  expect(port?.path).toBeUndefined();
});

it('names the key of each mistake', () => {
  expect(errorOf([{ device: 'A/plc-1', codec: 'modbus', transport: 'tcp', modbus: map }])).toMatch(/gateway\.ports\.0\.host: transport tcp needs `host:`/);
  expect(errorOf([{ device: 'A/plc-1', codec: 'ndjson', transport: 'tcp', host: 'h' }])).toMatch(/gateway\.ports\.0\.transport: transport tcp is for codec modbus/);
  expect(errorOf([{ device: 'A/plc-1', codec: 'modbus', transport: 'tcp', host: 'h', path: '/dev/ttyUSB0', modbus: map }])).toMatch(/gateway\.ports\.0\.path: transport tcp polls over TCP/);
  expect(errorOf([{ device: 'A/plc-1', codec: 'modbus', modbus: map }])).toMatch(/gateway\.ports\.0\.path: a serial port needs `path:`.*or `transport: tcp`/);
  expect(errorOf([{ device: 'A/plc-1', codec: 'modbus', transport: 'tcp', host: 'h', tcpPort: 70000, modbus: map }])).toMatch(/gateway\.ports\.0\.tcpPort:/);
  const twice = [
    { device: 'A/plc-1', codec: 'modbus', transport: 'tcp', host: 'h', modbus: { ...map, unitId: 2 } },
    { device: 'A/plc-2', codec: 'modbus', transport: 'tcp', host: 'h', reopenMinMs: 100, modbus: { ...map, unitId: 2 } },
  ];
  const message = errorOf(twice);
  expect(message).toMatch(/gateway\.ports\.1\.modbus\.unitId: unit id 2 on tcp:\/\/h:502 is already polled for ports\.0 \(A\/plc-1\)/);
  expect(message).toMatch(/gateway\.ports\.1\.reopenMinMs: 100 differs from ports\.0\.reopenMinMs \(500\)/);
});
