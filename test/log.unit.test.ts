import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { logger, logToFile, rootLogger } from '../lib/log.js';

const dir = mkdtempSync(join(tmpdir(), 'lw-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('logToFile', () => {
  it('writes every line to the file and shows warnings and errors on stderr too', () => {
    const file = join(dir, 'sub', 'linewatch.log');
    const previous = rootLogger.level;
    rootLogger.level = 'info';
    const seenOnStderr: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => {
      seenOnStderr.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    try {
      logToFile(file);
      const log = logger('test');
      log.info('just so you know');
      log.warn('look at this');
    } finally {
      process.stderr.write = write;
      rootLogger.level = previous;
    }
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; service: string });
    expect(lines.map((l) => l.msg)).toEqual(['just so you know', 'look at this']);
    expect(lines[0]!.service).toBe('test');
    expect(seenOnStderr.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['look at this']);
  });
});
