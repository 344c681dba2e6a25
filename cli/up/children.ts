// The child processes `linewatch up` starts (influxd, socat), recorded in <dataDir>/children.json
// so that if linewatch itself is killed outright (SIGKILL, a crash), the next `up` with the same
// data dir ends what the last one left behind. A PID is only ever signalled when its command
// line still mentions our data dir, so a PID reused by another program is left alone.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { sleep } from '../../lib/wait.js';

interface ChildRecord {
  name: string;
  pid: number;
}

function file(dataDir: string): string {
  return join(dataDir, 'children.json');
}

function read(dataDir: string): ChildRecord[] {
  if (!existsSync(file(dataDir))) return [];
  try {
    return JSON.parse(readFileSync(file(dataDir), 'utf8')) as ChildRecord[];
  } catch {
    return []; // a torn write from a crash: nothing reliable to act on
  }
}

/** The child's command line, or undefined if no such process (Linux /proc). */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return undefined;
  }
}

export class ChildRegistry {
  private readonly children: ChildRecord[] = [];

  constructor(private readonly dataDir: string) {}

  add(name: string, pid: number): void {
    this.children.push({ name, pid });
    this.save();
  }

  remove(pid: number): void {
    const i = this.children.findIndex((c) => c.pid === pid);
    if (i >= 0) this.children.splice(i, 1);
    this.save();
  }

  pids(): number[] {
    return this.children.map((c) => c.pid);
  }

  private save(): void {
    writeFileSync(file(this.dataDir), JSON.stringify(this.children));
  }
}

/**
 * Ends children a previous run in `dataDir` left running (SIGTERM, then SIGKILL after 3 s).
 * Returns a line per process ended.
 */
export async function reapLeftovers(dataDir: string): Promise<string[]> {
  const marker = resolve(dataDir);
  const ended: string[] = [];
  for (const child of read(dataDir)) {
    const cmd = commandLine(child.pid);
    if (!cmd || !cmd.includes(marker)) continue;
    signal(child.pid, 'SIGTERM');
    for (let i = 0; i < 30 && commandLine(child.pid) !== undefined; i++) await sleep(100);
    if (commandLine(child.pid) !== undefined) signal(child.pid, 'SIGKILL');
    ended.push(`${child.name} (pid ${child.pid})`);
  }
  writeFileSync(file(dataDir), '[]');
  return ended;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err; // it exited meanwhile: fine
  }
}
