// A pair of connected pseudo-terminals from socat, for tests: one end plays the serial device,
// the other is opened by the gateway through `serialport`. Links live in a temp dir; stop() ends
// socat by its PID and restart() brings the same link paths back (a USB device re-plugged).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPtyPair, type PtyPair } from '../../cli/up/pty-pair.js';

export interface TestPtyPair {
  /** The device's end (symlink path). */
  device: string;
  /** The gateway's end (symlink path). */
  gateway: string;
  pid(): number;
  /** Kills socat: both ends disappear, as when a USB adapter is pulled. */
  unplug(): Promise<void>;
  /** Starts socat again on the same link paths. */
  replug(): Promise<void>;
  /** Stops socat and removes the temp dir. */
  stop(): Promise<void>;
}

export async function startPtyPair(): Promise<TestPtyPair> {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-pty-'));
  const device = join(dir, 'device');
  const gateway = join(dir, 'gateway');
  let pair: PtyPair | undefined;
  try {
    pair = await openPtyPair(device, gateway);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    device,
    gateway,
    pid: () => pair?.pid ?? -1,
    async unplug() {
      await pair?.stop();
      pair = undefined;
    },
    async replug() {
      if (!pair) pair = await openPtyPair(device, gateway);
    },
    async stop() {
      await pair?.stop();
      pair = undefined;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
