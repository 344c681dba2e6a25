// scripts/patch-mqtt-packet.js (postinstall), run as `npm install` runs it — a child process —
// against temporary copies of node_modules/mqtt-packet: it refuses another version and a changed
// line (exit 1, nothing written), patches the original once, and the patched parser still logs
// when DEBUG names it at start and stays silent otherwise.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { aedesFile } from '../../broker/aedes-package.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/patch-mqtt-packet.js', import.meta.url));
const MARKER = '/* linewatch: debug off unless DEBUG names it at start */';
const NAMESPACES = { 'parser.js': 'mqtt-packet:parser', 'writeToStream.js': 'mqtt-packet:writeToStream' } as const;
type PatchedFile = keyof typeof NAMESPACES;
// The installed mqtt-packet (the one Aedes resolves), patched by this project's postinstall.
const INSTALLED = dirname(createRequire(aedesFile('aedes.js')).resolve('mqtt-packet'));

const originalLine = (file: PatchedFile): string => `const debug = require('debug')('${NAMESPACES[file]}')\n`;
const patchedLine = (file: PatchedFile): string => `const debug = ((log) => log.enabled ? log : function debugOff () {})(require('debug')('${NAMESPACES[file]}')) ${MARKER}\n`;

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the installed mqtt-packet in a temp dir, as npm unpacks it (the patch undone), its package.json at `version`. */
function copyOfMqttPacket(version = '9.0.2'): string {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-patch-mqtt-packet-'));
  dirs.push(dir);
  const root = join(dir, 'node_modules', 'mqtt-packet');
  cpSync(INSTALLED, root, { recursive: true });
  for (const file of Object.keys(NAMESPACES) as PatchedFile[]) {
    const installed = readFileSync(join(root, file), 'utf8');
    expect(installed).toContain(patchedLine(file));
    writeFileSync(join(root, file), installed.replace(patchedLine(file), originalLine(file)));
  }
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(root, 'package.json'), JSON.stringify({ ...pkg, version }));
  return root;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: 20_000, env: { PATH: process.env.PATH, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

/** Parses one PINGREQ with the mqtt-packet at `root` (its dependencies from this project's node_modules); prints the packet's cmd. */
const parsePing = (root: string, env: NodeJS.ProcessEnv): ReturnType<typeof run> =>
  run(['-e', `const p = require(${JSON.stringify(root)}).parser(); p.on('packet', (x) => console.log(x.cmd)); p.parse(Buffer.from([0xc0, 0]))`], { NODE_PATH: dirname(INSTALLED), ...env });

describe('scripts/patch-mqtt-packet.js', () => {
  it('patches the original 9.0.2 files once: the debug line of each, nothing else', async () => {
    const root = copyOfMqttPacket();
    const before = Object.fromEntries((Object.keys(NAMESPACES) as PatchedFile[]).map((file) => [file, readFileSync(join(root, file), 'utf8')]));
    const result = await run([SCRIPT, root]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/patched mqtt-packet 9\.0\.2: its debug calls are no-ops unless DEBUG enables them at start/);
    for (const file of Object.keys(NAMESPACES) as PatchedFile[]) {
      expect(readFileSync(join(root, file), 'utf8')).toBe(before[file]!.replace(originalLine(file), patchedLine(file)));
    }
    // Again: nothing to do, nothing written, nothing said.
    expect(await run([SCRIPT, root])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(join(root, 'parser.js'), 'utf8').split(MARKER)).toHaveLength(2);
  });

  it('the patched parser parses as before, logs when DEBUG names it at start, and is silent without', async () => {
    const root = copyOfMqttPacket();
    expect((await run([SCRIPT, root])).code).toBe(0);
    const quiet = await parsePing(root, {});
    expect(quiet).toEqual({ code: 0, stdout: 'pingreq\n', stderr: '' });
    const debugging = await parsePing(root, { DEBUG: 'mqtt-packet:parser' });
    expect(debugging.stdout).toBe('pingreq\n');
    expect(debugging.stderr).toMatch(/mqtt-packet:parser _parseHeader: packet: Packet \{ cmd: 'pingreq'/);
  });

  it('refuses another mqtt-packet version (exit 1) and changes nothing', async () => {
    const root = copyOfMqttPacket('9.1.0');
    const before = readFileSync(join(root, 'parser.js'), 'utf8');
    const result = await run([SCRIPT, root]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/written for mqtt-packet 9\.0\.2 but 9\.1\.0 is installed/);
    expect(readFileSync(join(root, 'parser.js'), 'utf8')).toBe(before);
  });

  it('refuses a file whose debug line changed (exit 1) and writes neither file', async () => {
    const root = copyOfMqttPacket();
    const changed = readFileSync(join(root, 'writeToStream.js'), 'utf8').replace(originalLine('writeToStream.js'), "const debug = require('debug')('mqtt-packet:write')\n");
    writeFileSync(join(root, 'writeToStream.js'), changed);
    const parserBefore = readFileSync(join(root, 'parser.js'), 'utf8');
    const result = await run([SCRIPT, root]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/mqtt-packet\/writeToStream\.js does not contain the line this patch expects/);
    expect(readFileSync(join(root, 'parser.js'), 'utf8')).toBe(parserBefore);
    expect(readFileSync(join(root, 'writeToStream.js'), 'utf8')).toBe(changed);
  });

  it('says which directory holds no mqtt-packet (exit 1)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'linewatch-patch-mqtt-packet-'));
    dirs.push(dir);
    const result = await run([SCRIPT, join(dir, 'nothing-here')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`no mqtt-packet package at ${join(dir, 'nothing-here')}`);
  });
});
