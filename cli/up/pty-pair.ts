// A pair of connected pseudo-terminals from `socat`, so a simulated legacy device can write
// serial frames into one end while the serial gateway reads the other — a real serial path
// through the kernel's tty layer, without hardware.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { findExecutable, searchPath } from '../../lib/find-executable.js';
import { sleep } from '../../lib/wait.js';

export const SOCAT_INSTALL_HINT = 'install socat (`sudo apt-get install socat`) to attach a simulated device through the serial gateway';

/** socat on PATH, else /usr/bin/socat. */
export function findSocat(): string | undefined {
  return findExecutable('socat', searchPath(['/usr/bin']));
}

export interface PtyPair {
  /** Symlinks to the two ends, e.g. DIR/sim-A-st-5 and DIR/gw-A-st-5. */
  a: string;
  b: string;
  pid: number;
  /** SIGTERM, then SIGKILL after 3 s; resolves once socat has exited. Idempotent. */
  stop(): Promise<void>;
}

/** Starts `socat` with two linked PTYs at `a` and `b` and waits (bounded) until both exist. */
export async function openPtyPair(a: string, b: string, socat = findSocat(), timeoutMs = 5000): Promise<PtyPair> {
  if (!socat) throw new Error(`socat was not found on PATH; ${SOCAT_INSTALL_HINT}`);
  // Its own process group: a Ctrl-C in the terminal reaches only linewatch, which then stops
  // socat after the gateway and the simulated device have closed their ends (no EIO mid-write).
  const child: ChildProcess = spawn(socat, [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const deadline = Date.now() + timeoutMs;
  while (!(existsSync(a) && existsSync(b))) {
    if (exited) throw new Error(`socat exited before opening the PTY pair: ${stderr.trim() || 'no message'}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exit;
      throw new Error(`socat did not create ${a} and ${b} within ${timeoutMs} ms`);
    }
    await sleep(20);
  }
  let stopping: Promise<void> | undefined;
  return {
    a: realpathSync(a),
    b: realpathSync(b),
    pid: child.pid!,
    stop() {
      stopping ??= (async () => {
        if (exited) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exit;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}
