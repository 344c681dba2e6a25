// The gateway's dropped-frame log (lib/log-limit.ts): at most 20 lines per port per 10 s, each
// naming the port and device, then one line with the exact count of the rest — while the
// dropped_* counters count every frame. Real PTY pair, real gateway, real broker; the log is
// the process's real pino logger writing into a file (logToFile).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestBroker } from '../harness/broker.js';
import type { TestPtyPair } from '../harness/pty.js';

// Log levels are read when lib/log.ts loads (silent under vitest): warn for this file's process,
// then the modules that log (and the harnesses that load them) are imported.
process.env.LINEWATCH_LOG_LEVEL = 'warn';
const { startTestBroker } = await import('../harness/broker.js');
const { startPtyPair } = await import('../harness/pty.js');
const { logToFile } = await import('../../lib/log.js');
const { SerialGateway } = await import('../../gateway/index.js');
const { waitFor } = await import('../../lib/wait.js');

interface LogLine {
  msg: string;
  port?: string;
  device?: string;
  reason?: string;
  suppressed?: number;
}

describe('dropped-frame log', () => {
  let dir: string;
  let broker: TestBroker;
  let pty: TestPtyPair;
  const logFile = (): string => join(dir, 'linewatch.log');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lw-drop-log-'));
    logToFile(logFile());
    [broker, pty] = await Promise.all([startTestBroker({ wsPort: null }), startPtyPair()]);
  });
  afterAll(async () => {
    await pty?.stop();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs the first 20 drops of a port with port and device, then one summary with the exact count', async () => {
    const gateway = new SerialGateway({ bus: broker.broker.bus, spoolDir: join(dir, 'spool'), ports: [{ path: pty.gateway, device: 'A/noisy-1', codec: 'text', baudRate: 115200, reopenMinMs: 50, reopenMaxMs: 400 }] });
    await gateway.start();
    const device = new SerialPort({ path: pty.device, baudRate: 115200, autoOpen: false });
    try {
      await waitFor(() => gateway.portsOpen()[pty.gateway], 10_000, 'the gateway to open its port');
      await new Promise<void>((resolve, reject) => device.open((err) => (err ? reject(err) : resolve())));
      const frames = 50;
      await new Promise<void>((resolve, reject) => device.write('not a sentence\n'.repeat(frames), (err) => (err ? reject(err) : device.drain((e) => (e ? reject(e) : resolve())))));
      await waitFor(() => gateway.counters().dropped_garbage === frames, 10_000, `${frames} dropped frames counted`);

      const lines = (): LogLine[] => readFileSync(logFile(), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as LogLine);
      const drops = lines().filter((line) => line.msg === 'frame dropped: garbage');
      expect(drops).toHaveLength(20);
      expect(drops.every((line) => line.port === pty.gateway && line.device === 'A/noisy-1' && line.reason === 'garbage')).toBe(true);
      // The interval's summary comes without a further drop (the limiter is flushed on a timer).
      const summary = await waitFor(() => lines().find((line) => line.suppressed !== undefined), 25_000, 'the summary of the suppressed drops');
      expect(summary).toMatchObject({ port: pty.gateway, device: 'A/noisy-1', suppressed: frames - 20 });
      expect(gateway.counters().dropped_garbage).toBe(frames);
    } finally {
      if (device.isOpen) await new Promise<void>((resolve) => device.close(() => resolve()));
      await gateway.stop();
    }
  }, 60_000);
});
