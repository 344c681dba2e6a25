// The page's files: dashboard/public/ (plain ES modules + CSS, no build step) and uPlot served
// straight from node_modules, so nothing is copied or bundled. The set of files is read once,
// at start: a URL path is one of them exactly or it is a 404, so no URL (however encoded) can
// reach anything else, and the cache holds at most one entry per file.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** dashboard/public, whether we run from the sources (dashboard/server) or from dist/dashboard/server. */
export function findPublicDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [resolve(here, '../public'), resolve(here, '../../../dashboard/public')];
  const found = candidates.find((c) => existsSync(join(c, 'index.html')));
  if (!found) throw new Error(`dashboard/public/index.html not found (looked in ${candidates.join(', ')}); is the checkout complete?`);
  return found;
}

const require = createRequire(import.meta.url);

const VENDOR: Record<string, string> = {
  '/vendor/uPlot.esm.js': 'uplot/dist/uPlot.esm.js',
  '/vendor/uPlot.min.css': 'uplot/dist/uPlot.min.css',
};

export interface StaticFile {
  body: Buffer;
  type: string;
}

/** URL path → file for every servable file under `root` (a known type), plus `/` and the vendored files. */
function listFiles(root: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const relative of readdirSync(root, { recursive: true, encoding: 'utf8' })) {
    const file = join(root, relative);
    if (TYPES[extname(file)] && statSync(file).isFile()) files.set(`/${relative.split(sep).join('/')}`, file);
  }
  files.set('/', join(root, 'index.html'));
  for (const [urlPath, module] of Object.entries(VENDOR)) files.set(urlPath, require.resolve(module));
  return files;
}

export class StaticFiles {
  private readonly files: Map<string, string>;
  /** file → its contents, filled on first request: at most one entry per file in `files`. */
  private readonly cache = new Map<string, StaticFile>();

  constructor(root: string) {
    this.files = listFiles(root);
  }

  /** Entries in the cache (for the dashboard's counters). */
  get cacheSize(): number {
    return this.cache.size;
  }

  /** The file for a URL path, or undefined if it is not exactly one of the files listed at start. */
  async get(urlPath: string): Promise<StaticFile | undefined> {
    const file = this.files.get(urlPath);
    if (!file) return undefined;
    const cached = this.cache.get(file);
    if (cached) return cached;
    const entry = { body: await readFile(file), type: TYPES[extname(file)]! };
    this.cache.set(file, entry);
    return entry;
  }
}
