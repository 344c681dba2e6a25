// An MQTT 5 CONNECT to a broker that speaks MQTT 3.1.1 (Aedes 1.2.0): CONNACK 0x01 (unacceptable
// protocol version, MQTT-3.1.2-2), a refusal that mosquitto_pub -V mqttv5 and MQTT.js
// (protocolVersion 5) both report clearly, counted as unsupported_protocol (not
// malformed_packet), and logged at warn at a bounded rate with what to do.
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_LIMIT_DEFAULTS } from '../../lib/log-limit.js';
import { withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { captureLog, type LogFile } from '../harness/log-file.js';
import { run } from '../harness/mosquitto-clients.js';
import { openSocket } from './raw-mqtt.js';

let log: LogFile;
let tb: TestBroker;

beforeAll(async () => {
  log = captureLog('info');
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount('A/v5-1', 'v5-device-secret', 'device');
});
afterAll(async () => {
  await tb?.stop();
  log?.restore();
});

/** A minimal MQTT 5 CONNECT: protocol level 5, clean start, keep alive 60 s, no properties. */
function mqtt5Connect(clientId: string): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0x02, 0, 60, 0]), Buffer.from([id.length >> 8, id.length & 0xff]), id]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

describe('an MQTT 5 CONNECT', () => {
  it('gets CONNACK 0x01 and the connection closed; counted as unsupported_protocol, not malformed_packet', async () => {
    const before = tb.broker.stats().rejects;
    const socket = await openSocket(tb.broker.ports.mqtt);
    const received: Buffer[] = [];
    socket.on('data', (data: Buffer) => received.push(data));
    const closed = withTimeout(new Promise<void>((resolve) => socket.once('close', () => resolve())), 5000, 'the broker to close the MQTT 5 connection');
    socket.write(mqtt5Connect('A/v5-1'));
    await closed;
    expect(Buffer.concat(received).toString('hex')).toBe('20020001'); // CONNACK, return code 1: unacceptable protocol version
    const after = tb.broker.stats().rejects;
    expect(after.unsupported_protocol - (before.unsupported_protocol ?? 0)).toBe(1);
    expect(after.malformed_packet).toBe(before.malformed_packet);
  });

  it('mosquitto_pub -V mqttv5 reports an unsupported protocol version', async () => {
    const before = tb.broker.stats().rejects.unsupported_protocol ?? 0;
    const result = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(tb.broker.ports.mqtt), '-V', 'mqttv5', '-u', 'A/v5-1', '-P', 'v5-device-secret', '-i', 'A/v5-1', '-t', 'lw/A/v5-1/status', '-m', '{}']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/Unsupported Protocol Version/);
    expect(tb.broker.stats().rejects.unsupported_protocol - before).toBe(1);
  });

  it('MQTT.js with protocolVersion 5 is refused with "Unacceptable protocol version" (code 1)', async () => {
    const before = tb.broker.stats().rejects.unsupported_protocol ?? 0;
    const error = await mqtt.connectAsync(tb.url, { protocolVersion: 5, username: 'A/v5-1', password: 'v5-device-secret', clientId: 'A/v5-1', reconnectPeriod: 0 }).then(
      async (client) => {
        await client.endAsync();
        throw new Error('the MQTT 5 client was accepted');
      },
      (err: Error & { code?: number }) => err,
    );
    expect(error.message).toMatch(/Unacceptable protocol version/);
    expect(error.code).toBe(1);
    expect(tb.broker.stats().rejects.unsupported_protocol - before).toBe(1);
  });

  it('is logged at warn with what to do, at a bounded rate', async () => {
    for (let n = 0; n < 30; n++) {
      const socket = await openSocket(tb.broker.ports.mqtt);
      socket.resume(); // read the CONNACK, so that 'close' can follow
      const closed = withTimeout(new Promise<void>((resolve) => socket.once('close', () => resolve())), 5000, 'the broker to close the MQTT 5 connection');
      socket.write(mqtt5Connect(`A/v5-1:flood-${n}`));
      await closed;
    }
    const lines = log.lines(/MQTT 5/);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(LOG_LIMIT_DEFAULTS.linesPerInterval);
    expect(lines.every((line) => line.level === 40)).toBe(true);
    expect(lines[0]!.msg).toMatch(/MQTT 3\.1\.1.*Mosquitto/);
  });
});
