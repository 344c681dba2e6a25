// A client that sends more QoS 2 PUBLISHes than Aedes's maxInflightInbound (1000 awaiting PUBREL,
// per client) without ever sending PUBREL: Aedes closes its connection; the broker counts it as
// qos2_inflight_exceeded and logs it at warn (rate-limited), naming the client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PacketReader } from '../../bench/mqtt-wire.js';
import { LOG_LIMIT_DEFAULTS } from '../../lib/log-limit.js';
import { waitFor } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { captureLog, type LogFile } from '../harness/log-file.js';
import { closed, mqttConnect, publishPacket } from './raw-mqtt.js';

/** Aedes 1.2.0's default maxInflightInbound (node_modules/aedes/aedes.js), which the broker keeps. */
const MAX_INFLIGHT_INBOUND = 1000;

let log: LogFile;
let tb: TestBroker;

beforeAll(async () => {
  log = captureLog('info');
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount('A/qos2-1', 'qos2-device-secret', 'device');
});
afterAll(async () => {
  await tb?.stop();
  log?.restore();
});

/** Connects A/qos2-1 with `suffix` and sends `count` QoS 2 PUBLISHes (ids 1…count), never a PUBREL. */
async function withholdPubrel(suffix: string, count: number) {
  const { socket, returnCode } = await mqttConnect(tb.broker.ports.mqtt, `A/qos2-1:${suffix}`, { username: 'A/qos2-1', password: 'qos2-device-secret' });
  expect(returnCode).toBe(0);
  const pubrecs = { count: 0 };
  const reader = new PacketReader();
  socket.on('data', (data: Buffer) => reader.push(data, (packet) => void (packet.type === 5 && pubrecs.count++)));
  const payload = Buffer.from(JSON.stringify({ ts: Date.now(), status: 'online' }));
  for (let id = 1; id <= count; id++) socket.write(publishPacket('lw/A/qos2-1/status', payload, 2, id));
  return { socket, pubrecs };
}

describe('QoS 2 in flight beyond maxInflightInbound', () => {
  it('keeps a client within the limit connected, and counts nothing', async () => {
    const { socket, pubrecs } = await withholdPubrel('within', MAX_INFLIGHT_INBOUND);
    await waitFor(() => pubrecs.count === MAX_INFLIGHT_INBOUND, 20_000, `a PUBREC for each of ${MAX_INFLIGHT_INBOUND} QoS 2 publishes`);
    expect(socket.destroyed).toBe(false);
    expect(tb.broker.stats().rejects.qos2_inflight_exceeded).toBe(0);
    socket.destroy();
  });

  it('closes the client that sends one more, counts it once and logs it at warn naming the client', async () => {
    const { socket, pubrecs } = await withholdPubrel('over', MAX_INFLIGHT_INBOUND + 1);
    await closed(socket, 20_000, 'the broker to close the connection over maxInflightInbound');
    expect(pubrecs.count).toBeLessThanOrEqual(MAX_INFLIGHT_INBOUND);
    expect(tb.broker.stats().rejects.qos2_inflight_exceeded).toBe(1);
    const lines = log.lines(/maxInflightInbound/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, clientId: 'A/qos2-1:over', maxInflightInbound: MAX_INFLIGHT_INBOUND });
  });

  it('logs at a bounded rate', async () => {
    const before = tb.broker.stats().rejects.qos2_inflight_exceeded;
    for (let n = 0; n < LOG_LIMIT_DEFAULTS.linesPerInterval + 2; n++) {
      await closed((await withholdPubrel(`flood-${n}`, MAX_INFLIGHT_INBOUND + 1)).socket, 20_000, 'the broker to close the connection over maxInflightInbound');
    }
    expect(tb.broker.stats().rejects.qos2_inflight_exceeded - before).toBe(LOG_LIMIT_DEFAULTS.linesPerInterval + 2);
    expect(log.lines(/maxInflightInbound/).length).toBeLessThanOrEqual(LOG_LIMIT_DEFAULTS.linesPerInterval);
  });
});
