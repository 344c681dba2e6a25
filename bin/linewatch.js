#!/usr/bin/env node
// The `linewatch` command: runs the compiled CLI (built by `npm ci` through the `prepare` script).
import { existsSync } from 'node:fs';
const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('linewatch: dist/cli/main.js is missing — the TypeScript is not built. Run `npm run build` in the linewatch folder.');
  process.exit(1);
}
await import(entry.href);
