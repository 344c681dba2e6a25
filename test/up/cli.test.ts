// `linewatch up` refuses bad flags and configs with one clear line, before starting anything.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dir = mkdtempSync(join(tmpdir(), 'linewatch-up-cli-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function up(...args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, ['bin/linewatch.js', 'up', '--data-dir', join(dir, 'data'), ...args], { cwd: ROOT, timeout: 20_000 }, (err, _stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
    );
  });
}

describe('linewatch up: errors', () => {
  it('refuses a port that is not a port', async () => {
    const r = await up('--dashboard-port', '99999');
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('linewatch: "99999" is not a port number (0–65535; 0 picks a free port)');
  });

  it('names the bad key of the config file', async () => {
    const config = join(dir, 'bad.yaml');
    writeFileSync(config, 'dashboard:\n  port: eighty\n');
    const r = await up('--config', config);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/dashboard\.port: Invalid input: expected number/);
    expect(r.stderr).toMatch(/docs\/configuration\.md/);
  });

  it('says when the config file does not exist', async () => {
    const r = await up('--config', join(dir, 'missing.yaml'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/missing\.yaml does not exist/);
  });
});
