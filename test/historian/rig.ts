// What the historian's MQTT tests share: a real influxd and broker — with a `hist` account
// (historian role) and a `gw` account (gateway role, to publish device events) — and a temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestBroker, type TestBroker } from '../harness/broker.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

export interface HistorianRig {
  influx: TestInflux;
  broker: TestBroker;
  dir: string;
  stop(): Promise<void>;
}

export async function startHistorianRig(dirPrefix: string): Promise<HistorianRig> {
  const [influx, broker] = await Promise.all([startTestInflux(), startTestBroker({ wsPort: null })]);
  await broker.addAccount('hist', 'hist-password', 'historian');
  await broker.addAccount('gw', 'gw-password-1', 'gateway');
  const dir = mkdtempSync(join(tmpdir(), dirPrefix));
  return {
    influx,
    broker,
    dir,
    async stop() {
      await Promise.all([influx.stop(), broker.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
