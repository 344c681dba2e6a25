// The managed influxd: starts on 127.0.0.1 with a private config, survives SIGKILL + restart on
// the same port with its data intact, and two instances do not collide.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findInfluxd, influxdConfig, influxToUse, ping, startManagedInfluxd } from '../../historian/influxd.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';

describe('managed influxd', () => {
  let influx: TestInflux;
  beforeAll(async () => {
    influx = await startTestInflux();
  });
  afterAll(async () => {
    await influx?.stop();
  });

  it('finds the influxd binary', () => {
    expect(findInfluxd()).toMatch(/influxd$/);
  });

  it('writes a config that binds to 127.0.0.1, disables reporting and the _internal store', () => {
    const conf = readFileSync(join(influx.dataDir, 'influxd.conf'), 'utf8');
    expect(conf).toContain('reporting-enabled = false');
    expect(conf).not.toContain('reporting-disabled');
    expect(conf).toMatch(/\[monitor\]\s+store-enabled = false/);
    expect(conf).toContain(`bind-address = "127.0.0.1:${influx.port}"`);
    expect(conf).toMatch(/^bind-address = "127\.0\.0\.1:\d+"$/m);
    expect(conf).not.toMatch(/bind-address = ":/);
  });

  it('answers /ping, keeps data across SIGKILL and restart on the same port', async () => {
    expect(await ping(influx.url)).toBe(true);
    await influx.query('CREATE DATABASE t1');
    const res = await fetch(`${influx.url}/write?db=t1&precision=ms`, { method: 'POST', body: 'm,a=1 v=1 1700000000000\nm,a=1 v=2 1700000001000' });
    expect(res.status).toBe(204);
    const pid = influx.pid();
    await influx.kill('SIGKILL');
    expect(await ping(influx.url)).toBe(false);
    await influx.restart();
    expect(influx.pid()).not.toBe(pid);
    const [result] = await influx.query('SELECT count(v) FROM m', 't1');
    expect(result?.series?.[0]?.values[0]?.[1]).toBe(2);
  });

  it('runs a second instance alongside without port collisions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lw-influx2-'));
    try {
      const second = await startManagedInfluxd({ dataDir: dir });
      expect(second.port).not.toBe(influx.port);
      expect(await ping(second.url)).toBe(true);
      expect(await ping(influx.url)).toBe(true);
      await second.stop();
      expect(await ping(second.url)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says how to install influxd when the binary is missing', async () => {
    expect(findInfluxd(['/nonexistent-lw-bin'])).toBeUndefined();
    const dir = mkdtempSync(join(tmpdir(), 'lw-noinflux-'));
    try {
      await expect(startManagedInfluxd({ dataDir: dir, binary: join(dir, 'influxd') })).rejects.toThrow(/apt-get install influxdb/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('uses a configured InfluxDB as it is, and starts a managed influxd under <dataDir>/influxd only without one (influxToUse: linewatch up and the historian)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lw-influx-to-use-'));
    try {
      const configured = await influxToUse(influx.url, dir);
      expect(configured).toEqual({ url: influx.url, managed: undefined });
      expect(existsSync(join(dir, 'influxd'))).toBe(false); // nothing started, nothing written

      const managed = await influxToUse(undefined, dir);
      try {
        expect(managed.url).toBe(managed.managed?.url);
        expect(existsSync(join(dir, 'influxd', 'influxd.conf'))).toBe(true);
        expect(await ping(managed.url)).toBe(true);
      } finally {
        await managed.managed?.stop();
      }
      expect(await ping(managed.url)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('renders distinct HTTP and RPC addresses', () => {
    const conf = influxdConfig('/d', 1234, 5678);
    expect(conf).toContain('bind-address = "127.0.0.1:5678"');
    expect(conf).toContain('bind-address = "127.0.0.1:1234"');
  });
});
