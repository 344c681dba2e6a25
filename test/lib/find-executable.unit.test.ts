// lib/find-executable.ts against real files in a temp dir: executable files only, first directory wins.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findSocat } from '../../cli/up/pty-pair.js';
import { findInfluxd } from '../../historian/influxd.js';
import { findExecutable, searchPath } from '../../lib/find-executable.js';

describe('findExecutable', () => {
  let dir: string;
  const sub = (name: string): string => join(dir, name);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lw-find-exe-'));
    for (const name of ['first', 'second', 'plain', 'folder']) mkdirSync(sub(name));
    writeFileSync(sub('first/tool'), '#!/bin/sh\n');
    chmodSync(sub('first/tool'), 0o755);
    writeFileSync(sub('second/tool'), '#!/bin/sh\n');
    chmodSync(sub('second/tool'), 0o755);
    writeFileSync(sub('plain/tool'), 'not executable\n');
    chmodSync(sub('plain/tool'), 0o644);
    mkdirSync(sub('folder/tool')); // a directory is "executable" (searchable) but not a program
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('returns the executable file in the first directory that has one', () => {
    expect(findExecutable('tool', [sub('missing'), sub('plain'), sub('second'), sub('first')])).toBe(sub('second/tool'));
  });

  it('skips a file without the execute bit and a directory of that name, and says undefined when none is left', () => {
    expect(findExecutable('tool', [sub('plain'), sub('folder')])).toBeUndefined();
  });

  it('finds influxd and socat the same way (a directory named like them is not them)', () => {
    mkdirSync(sub('folder/influxd'));
    expect(findInfluxd([sub('folder')])).toBeUndefined();
    writeFileSync(sub('first/socat'), '#!/bin/sh\n');
    chmodSync(sub('first/socat'), 0o755);
    const saved = process.env.PATH;
    process.env.PATH = sub('first');
    try {
      expect(findSocat()).toBe(sub('first/socat'));
    } finally {
      process.env.PATH = saved;
    }
  });

  it('searches PATH, then the fallback directories, each once', () => {
    const saved = process.env.PATH;
    process.env.PATH = [sub('first'), '', sub('second')].join(delimiter);
    try {
      expect(searchPath([sub('second'), '/usr/bin'])).toEqual([sub('first'), sub('second'), '/usr/bin']);
    } finally {
      process.env.PATH = saved;
    }
  });
});
