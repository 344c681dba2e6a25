// Temporary rules folders for the loader's tests: `folder({ 'a.yaml': text })` writes one, and
// `removeFolders()` (in afterEach) deletes every folder made since.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];

export function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'linewatch-rules-load-'));
  made.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

export function removeFolders(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}
