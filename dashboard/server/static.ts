// The page's files: dashboard/public/ (plain ES modules + CSS, no build step) and uPlot served
// straight from node_modules, so nothing is copied or bundled.
import { existsSync } from 'node:fs';
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

export class StaticFiles {
  private readonly cache = new Map<string, StaticFile>();

  constructor(private readonly root: string) {}

  /** The file for a URL path, or undefined if there is none (never anything outside the root). */
  async get(urlPath: string): Promise<StaticFile | undefined> {
    const cached = this.cache.get(urlPath);
    if (cached) return cached;
    let file: string | undefined;
    const vendor = VENDOR[urlPath];
    if (vendor) {
      file = require.resolve(vendor);
    } else {
      let rel: string;
      try {
        rel = urlPath === '/' ? 'index.html' : decodeURIComponent(urlPath).replace(/^\/+/, '');
      } catch (err) {
        if (err instanceof URIError) return undefined; // malformed %-escape: no such file
        throw err;
      }
      const full = resolve(this.root, rel);
      if (!full.startsWith(this.root + sep)) return undefined;
      file = full;
    }
    const type = TYPES[extname(file)];
    if (!type || !existsSync(file)) return undefined;
    const entry = { body: await readFile(file), type };
    this.cache.set(urlPath, entry);
    return entry;
  }
}
