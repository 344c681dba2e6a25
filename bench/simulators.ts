// Simulated devices per process at 1 Hz and the CPU they cost. The broker is a separate
// Mosquitto process (so this process's CPU is the simulator's alone) and messages are counted
// by a mosquitto_sub child. Reference: the bare model (no transport) for the same devices.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, waitFor } from '../lib/wait.js';
import { LineModel, LineSimulator, layoutForDeviceCount, parseScenario } from '../simulators/index.js';
import type { Report } from './report.js';

const SECONDS = 10;

export async function run(report: Report): Promise<void> {
  const rows: (string | number)[][] = [];
  rows.push(modelOnly(5000));
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-bench-sim-'));
  const port = await freePort();
  writeFileSync(join(dir, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n`);
  const broker = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  try {
    await sleep(500);
    const url = `mqtt://127.0.0.1:${port}`;
    rows.push(await overMqtt(url, 5000, 'shared'));
    rows.push(await overMqtt(url, 1000, 'per-device'));
    rows.push(await overMqtt(url, 5000, 'per-device'));
  } finally {
    await stopChild(broker);
    rmSync(dir, { recursive: true, force: true });
  }
  report.add({
    title: 'Simulated devices per process at 1 Hz',
    note: `Each device sends telemetry once per simulated second (plus state changes) for ${SECONDS} s in real time. CPU is this Node process's user+system time (the simulator and its MQTT clients) over the run, as % of one core; the broker (Mosquitto) and the counting subscriber (mosquitto_sub) run in their own processes. "shared": a few connections of one gateway-role account speak for all devices; "per-device": one MQTT connection per device (5,000 sockets). RSS is the whole process's resident memory at the end of that row (rows run one after another in one process, so it is indicative only).`,
    columns: ['setup', 'devices', 'MQTT connections', 'messages/s at subscriber', 'CPU % of one core', 'process RSS MiB'],
    rows,
  });
}

function modelOnly(devices: number): (string | number)[] {
  const model = new LineModel({ seed: 1, scenario: parseScenario({}), startTime: Date.now(), layout: layoutForDeviceCount(devices) });
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  let messages = 0;
  for (let s = 0; s < 60; s++) messages += model.advance(1000).length;
  const used = process.cpuUsage(cpu);
  const wall = performance.now() - t0;
  // CPU per simulated second, as a share of a core when run at 1× speed.
  const pct = ((used.user + used.system) / 1000 / 60 / 1000) * 100;
  return ['reference: model only (no I/O), 60 simulated s', devices, 0, `${((messages / wall) * 1000).toFixed(0)} (generated)`, pct.toFixed(1), rssMiB()];
}

async function overMqtt(url: string, devices: number, mode: 'shared' | 'per-device'): Promise<(string | number)[]> {
  const line = `S${mode === 'shared' ? 's' : 'p'}`;
  const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', url.split(':').at(-1)!, '-t', `lw/${line}/+/telemetry`, '-q', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let count = 0;
  sub.stdout!.on('data', (d: Buffer) => {
    for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) count++;
  });
  await sleep(300);
  const sim = new LineSimulator({ line, seed: 1, devices, scenario: parseScenario({}), rateHz: 1, mqtt: { url, mode } });
  try {
    await sim.start();
    await waitFor(() => count > 0, 10_000, 'the first telemetry at the subscriber');
    const c0 = count;
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    await sleep(SECONDS * 1000);
    const used = process.cpuUsage(cpu);
    const wall = performance.now() - t0;
    const rate = ((count - c0) / wall) * 1000;
    const pct = ((used.user + used.system) / 1000 / wall) * 100;
    return [`LineSimulator over MQTT, ${mode}`, devices, sim.counters().connections ?? 0, rate.toFixed(0), pct.toFixed(1), rssMiB()];
  } finally {
    await sim.stop();
    await stopChild(sub);
  }
}

function rssMiB(): string {
  return (process.memoryUsage().rss / 2 ** 20).toFixed(0);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}
