// The gateway's per-device seq on real files: blocks reserved ahead (never a number twice, even
// when a stop never came), the exact place kept by a clean close, device-supplied seqs kept while
// they move the sequence forward, and a file it cannot read refused with what to do.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SEQUENCE_BLOCK, SequenceStore } from '../../gateway/sequence-store.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'linewatch-seq-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const onDisk = (): unknown => JSON.parse(readFileSync(join(dir, 'sequences.json'), 'utf8'));

describe('SequenceStore', () => {
  it('reserves a block before numbering into it, so a store never closed goes on past everything it numbered', () => {
    const store = SequenceStore.open(dir);
    const sequence = store.device('A/p-1');
    expect([sequence.take(undefined), sequence.take(undefined)]).toEqual([0, 1]);
    expect(onDisk()).toEqual({ version: 1, next: { 'A/p-1': SEQUENCE_BLOCK } });
    for (let n = 2; n < SEQUENCE_BLOCK; n++) sequence.take(undefined);
    expect(sequence.take(undefined)).toBe(SEQUENCE_BLOCK);
    expect(onDisk()).toEqual({ version: 1, next: { 'A/p-1': 2 * SEQUENCE_BLOCK } });
    // No close (a crash): the next run starts at the reserved end.
    expect(SequenceStore.open(dir).device('A/p-1').take(undefined)).toBe(2 * SEQUENCE_BLOCK);
  });

  it('keeps the exact next number on a clean close', () => {
    const store = SequenceStore.open(dir);
    const sequence = store.device('A/p-1');
    sequence.take(undefined);
    sequence.take(undefined);
    store.close();
    expect(SequenceStore.open(dir).device('A/p-1').take(undefined)).toBe(2);
  });

  it('keeps a device-supplied seq while it moves forward, else shifts the device’s numbers above the sequence', () => {
    const sequence = SequenceStore.open(dir).device('A/p-1');
    expect([5, undefined, 6, 8, undefined, 2, 3].map((supplied) => sequence.take(supplied))).toEqual([5, 6, 7, 9, 10, 11, 12]);
  });

  it('refuses a file it cannot read, naming it and the fix', () => {
    writeFileSync(join(dir, 'sequences.json'), '{"version":1,"next":{"A/p-1":');
    expect(() => SequenceStore.open(dir)).toThrow(/sequences\.json is not valid JSON .*delete it to start every device's seq again from 0/);
    writeFileSync(join(dir, 'sequences.json'), '{"version":1,"next":{"A/p-1":-3}}');
    expect(() => SequenceStore.open(dir)).toThrow(/sequences\.json: next\.A\/p-1: .*restore the file/);
  });
});
