// Where the installed Aedes lives and which version it is: the guards on Aedes internals
// (aedes-patch.ts, drop-refused.ts) check against it. The package's entry (aedes.js) sits at its
// root; its package.json is not exported, so it is read from there.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The Aedes version the overrides of its internals are written for (pinned exactly in package.json). */
export const AEDES_VERSION = '1.2.0';

/** The path of a file inside the installed aedes package. */
export function aedesFile(relative: string): string {
  return join(dirname(createRequire(import.meta.url).resolve('aedes')), relative);
}

/** The version of the installed aedes package. */
export function installedAedesVersion(): string {
  return (JSON.parse(readFileSync(aedesFile('package.json'), 'utf8')) as { version: string }).version;
}
