// scripts/patch-aedes.js (the postinstall patch of Aedes), run as `npm install` runs it — a
// child process — against a temporary copy of a node_modules/aedes tree: it refuses another
// version and a changed source text (exit 1, its message), patches the original, and leaves a
// patched file as it is.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { aedesFile } from '../../broker/aedes-package.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/patch-aedes.js', import.meta.url));
const MARKER = '/* linewatch: PUBACK after publish */';
// The QoS 1 block of aedes 1.2.0's lib/handlers/publish.js, before and after the patch.
const ORIGINAL_BLOCK = `    case 1:
      write(client, new PubAck(packet), function (err) {
        if (err) { return done(err) }
        client.broker.publish(packet, client, done)
      })
      break`;
const PATCHED_BLOCK = `    case 1: ${MARKER}
      client.broker.publish(packet, client, function (err) {
        if (err) { return done(err) }
        write(client, new PubAck(packet), done)
      })
      break`;

/** The installed (patched) handler with the patch undone: aedes 1.2.0's file as npm unpacks it. */
function originalHandler(): string {
  const installed = readFileSync(aedesFile('lib/handlers/publish.js'), 'utf8');
  expect(installed).toContain(PATCHED_BLOCK);
  return installed.replace(PATCHED_BLOCK, ORIGINAL_BLOCK);
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A node_modules/aedes tree in a temp dir: package.json with `version`, lib/handlers/publish.js with `handler`. */
function fakeAedesTree(version: string, handler: string): { root: string; handlerFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-patch-aedes-'));
  dirs.push(dir);
  const root = join(dir, 'node_modules', 'aedes');
  mkdirSync(join(root, 'lib', 'handlers'), { recursive: true });
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'aedes', version }));
  const handlerFile = join(root, 'lib', 'handlers', 'publish.js');
  writeFileSync(handlerFile, handler);
  return { root, handlerFile };
}

function runPatch(root: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT, root], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

describe('scripts/patch-aedes.js', () => {
  it('patches the original aedes 1.2.0 handler: publish, then PUBACK', async () => {
    const original = originalHandler();
    const { root, handlerFile } = fakeAedesTree('1.2.0', original);
    const result = await runPatch(root);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/patched aedes 1\.2\.0 to send PUBACK after the publish/);
    expect(readFileSync(handlerFile, 'utf8')).toBe(original.replace(ORIGINAL_BLOCK, PATCHED_BLOCK));
  });

  it('leaves an already patched handler as it is (exit 0, nothing written)', async () => {
    const patched = originalHandler().replace(ORIGINAL_BLOCK, PATCHED_BLOCK);
    const { root, handlerFile } = fakeAedesTree('1.2.0', patched);
    const result = await runPatch(root);
    expect(result).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(handlerFile, 'utf8')).toBe(patched);
    expect(readFileSync(handlerFile, 'utf8').split(MARKER)).toHaveLength(2); // the marker once
  });

  it('refuses another aedes version (exit 1) and changes nothing', async () => {
    const original = originalHandler();
    const { root, handlerFile } = fakeAedesTree('1.3.0', original);
    const result = await runPatch(root);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/scripts\/patch-aedes\.js is written for aedes 1\.2\.0 but 1\.3\.0 is installed/);
    expect(readFileSync(handlerFile, 'utf8')).toBe(original);
  });

  it('refuses a handler whose QoS 1 block changed (exit 1) and changes nothing', async () => {
    const changed = originalHandler().replace('write(client, new PubAck(packet), function (err) {', 'write(client, new PubAck(packet), (err) => {');
    const { root, handlerFile } = fakeAedesTree('1.2.0', changed);
    const result = await runPatch(root);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/aedes\/lib\/handlers\/publish\.js does not contain the QoS 1 block this patch expects/);
    expect(readFileSync(handlerFile, 'utf8')).toBe(changed);
  });

  it('says which directory holds no aedes (exit 1)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'linewatch-patch-aedes-'));
    dirs.push(dir);
    const result = await runPatch(join(dir, 'node_modules', 'aedes'));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`no aedes package at ${join(dir, 'node_modules', 'aedes')}`);
  });
});
