// Reject logs are rate-limited while the counters stay exact: 1,000 invalid payloads from one
// device, against a real broker, produce a bounded number of log lines and a count of 1,000.
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_LIMIT_DEFAULTS } from '../../lib/log-limit.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { captureLog, type LogFile } from '../harness/log-file.js';

let log: LogFile;
let tb: TestBroker;

beforeAll(async () => {
  log = captureLog('info');
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount('A/noisy-1', 'noisy-secret-1', 'device');
});
afterAll(async () => {
  await tb?.stop();
  log?.restore();
});

function logLines(msg: RegExp): number {
  return log.lines(msg).length;
}

describe('reject logs', () => {
  it('1,000 invalid payloads from one device: at most a few log lines, and the counter says 1,000', async () => {
    const device = await mqtt.connectAsync(tb.url, { username: 'A/noisy-1', password: 'noisy-secret-1', clientId: 'A/noisy-1', reconnectPeriod: 0 });
    try {
      await Promise.all(Array.from({ length: 1000 }, (_, seq) => device.publishAsync('lw/A/noisy-1/telemetry', `{"seq": ${seq}, "values":`, { qos: 1 })));
    } finally {
      await device.endAsync();
    }
    expect(tb.broker.stats().rejects.invalid_payload).toBe(1000);
    const lines = logLines(/refused an invalid payload/);
    expect(lines).toBeGreaterThanOrEqual(1);
    expect(lines).toBeLessThanOrEqual(LOG_LIMIT_DEFAULTS.linesPerInterval);
  });

  it('refused logins are logged at a bounded rate too, and counted exactly', async () => {
    const before = tb.broker.stats().rejects.client_id_denied;
    for (let n = 0; n < 40; n++) {
      await mqtt.connectAsync(tb.url, { username: 'A/noisy-1', password: 'noisy-secret-1', clientId: `thief-${n}`, reconnectPeriod: 0 }).then(
        (c) => c.endAsync(),
        () => undefined,
      );
    }
    expect(tb.broker.stats().rejects.client_id_denied - before).toBe(40);
    expect(logLines(/refused a client id/)).toBeLessThanOrEqual(LOG_LIMIT_DEFAULTS.linesPerInterval);
  });
});
