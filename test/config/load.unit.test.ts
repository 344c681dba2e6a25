import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../../config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'lw-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('configuration', () => {
  it('has a default for every key', () => {
    const c = parseConfig({});
    expect(c.broker.port).toBe(1883);
    expect(c.broker.open).toBe(false);
    expect(c.dashboard.port).toBe(8080);
  });

  it('names the key that is wrong', () => {
    expect(() => parseConfig({ broker: { port: 'x' } })).toThrow(/broker\.port: .*number/);
    expect(() => parseConfig({ broker: { prot: 1 } })).toThrow(/broker: .*prot/);
  });

  it('reads YAML and lets CLI flags override it', () => {
    const file = join(dir, 'lw.yaml');
    writeFileSync(file, 'broker:\n  port: 1999\n  wsPort: null\n');
    const c = loadConfig(file, { broker: { port: 2000, host: undefined } });
    expect(c.broker.port).toBe(2000);
    expect(c.broker.wsPort).toBeNull();
    expect(c.broker.host).toBe('127.0.0.1');
  });

  it('reports YAML syntax errors with the line', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'broker:\n  port: [1\n');
    expect(() => loadConfig(file)).toThrow(ConfigError);
    expect(() => loadConfig(file)).toThrow(/line \d+/);
  });

  it('says when the file is missing', () => {
    expect(() => loadConfig(join(dir, 'nope.yaml'))).toThrow(/does not exist/);
  });
});
