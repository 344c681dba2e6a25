// Reject logs are rate-limited while the counters stay exact: 1,000 invalid payloads from one
// device, against a real broker, produce a bounded number of log lines and a count of 1,000.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logToFile, rootLogger } from '../../lib/log.js';
import { LOG_LIMIT_DEFAULTS } from '../../lib/log-limit.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

const dir = mkdtempSync(join(tmpdir(), 'lw-reject-logs-'));
const logFile = join(dir, 'linewatch.log');
const previousLevel = rootLogger.level;
let tb: TestBroker;

beforeAll(async () => {
  logToFile(logFile);
  rootLogger.level = 'info';
  tb = await startTestBroker({ wsPort: null });
  await tb.addAccount('A/noisy-1', 'noisy-secret-1', 'device');
});
afterAll(async () => {
  rootLogger.level = previousLevel;
  await tb?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function logLines(msg: RegExp): number {
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((line) => line && msg.test((JSON.parse(line) as { msg: string }).msg)).length;
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
