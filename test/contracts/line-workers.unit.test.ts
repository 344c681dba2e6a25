// Which worker owns a line: the hash is a contract between every worker of every version, so its
// values are pinned here (standard FNV-1a vectors, and the workers of a few line ids).
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ALL_LINES, describeOwnership, lineHash, lineOfTopic, lineOwnershipShape, ownedFilters, ownershipLabel, ownershipOf, ownsLine, workerOfLine } from '../../contracts/line-workers.js';
import { shadowTopic, topics } from '../../contracts/topics.js';

describe('line workers', () => {
  it('hashes line ids with the standard FNV-1a (32 bit), pinned', () => {
    expect(lineHash('')).toBe(0x811c9dc5);
    expect(lineHash('a')).toBe(0xe40c292c);
    expect(lineHash('foobar')).toBe(0xbf9cf968);
    expect(lineHash('A')).toBe(0xc40bf6cc);
    expect(lineHash('line-1')).toBe(0xaa70841d);
    expect(lineHash('Ω')).toBe(0x1aaaae68); // UTF-8 bytes, not UTF-16 code units
  });

  it('gives each line one worker of N, pinned', () => {
    const lines = ['A', 'B', 'C', 'D', 'line-1', 'line-2', '_dead'];
    expect(lines.map((line) => workerOfLine(line, 2))).toEqual([1, 2, 1, 2, 2, 1, 1]);
    expect(lines.map((line) => workerOfLine(line, 3))).toEqual([1, 1, 2, 1, 3, 3, 3]);
    expect(lines.map((line) => workerOfLine(line, 4))).toEqual([1, 2, 3, 4, 2, 1, 1]);
    expect(lines.map((line) => workerOfLine(line, 1))).toEqual(lines.map(() => 1));
  });

  it('makes the hashed workers of N disjoint and together complete', () => {
    const lines = Array.from({ length: 200 }, (_, k) => `L${k}`);
    for (const count of [2, 3, 5]) {
      for (const line of lines) {
        const owners = Array.from({ length: count }, (_, k) => k + 1).filter((index) => ownsLine({ kind: 'hash', index, count }, line));
        expect(owners).toHaveLength(1);
      }
    }
  });

  it('reads the line of a topic, _dead for a dead letter', () => {
    expect(lineOfTopic(topics.telemetry('A', 'conv-1'))).toBe('A');
    expect(lineOfTopic(topics.alarmSet('B', 'overheat:B/conv-1'))).toBe('B');
    expect(lineOfTopic(topics.deadLetter('A/x'))).toBe('_dead');
    // A shadow rule set's output belongs to the line it is about.
    expect(lineOfTopic(shadowTopic(topics.cmd('A', 'line-ctl')))).toBe('A');
    expect(lineOfTopic(shadowTopic(topics.alerts('B')))).toBe('B');
    expect(lineOfTopic(shadowTopic(topics.deadLetter('rules')))).toBe('_dead');
    expect(lineOfTopic('lw/_shadow/A')).toBeUndefined();
    expect(lineOfTopic('lw/A')).toBeUndefined();
    expect(lineOfTopic('other/A/x/state')).toBeUndefined();
  });

  it('narrows subscription filters to listed lines only', () => {
    expect(ownedFilters({ kind: 'lines', lines: ['A', 'B'] }, [topics.all])).toEqual(['lw/A/#', 'lw/_shadow/A/#', 'lw/B/#', 'lw/_shadow/B/#']);
    expect(ownedFilters({ kind: 'lines', lines: ['A'] }, [topics.allShadow, 'lw/_shadow/+/alerts'])).toEqual(['lw/_shadow/A/#', 'lw/_shadow/A/alerts']);
    expect(ownedFilters({ kind: 'lines', lines: ['A'] }, [...topics.allDeviceEvents, topics.allAlarms])).toEqual(['lw/A/+/state', 'lw/A/+/telemetry', 'lw/A/+/status', 'lw/A/+/cmd/ack', 'lw/A/alarms/+']);
    expect(ownedFilters(ALL_LINES, [topics.all])).toEqual([topics.all]);
    expect(ownedFilters({ kind: 'hash', index: 1, count: 2 }, [topics.all])).toEqual([topics.all]);
    expect(() => ownedFilters({ kind: 'lines', lines: ['A'] }, ['lw/_dead/#'])).toThrow(/cannot narrow lw\/_dead\/# to line A/);
  });

  it('reads lines / worker from a config section, refusing both at once', () => {
    const schema = z.strictObject(lineOwnershipShape);
    expect(ownershipOf(schema.parse({}), 'historian')).toEqual(ALL_LINES);
    expect(ownershipOf(schema.parse({ lines: ['A', 'B', 'A'] }), 'historian')).toEqual({ kind: 'lines', lines: ['A', 'B'] });
    expect(ownershipOf(schema.parse({ worker: '2/3' }), 'rules')).toEqual({ kind: 'hash', index: 2, count: 3 });
    expect(ownershipOf(schema.parse({ worker: '1/1' }), 'rules')).toEqual(ALL_LINES);
    expect(() => ownershipOf(schema.parse({ lines: ['A'], worker: '1/2' }), 'rules')).toThrow(/rules.lines and rules.worker .* are both set/);
    expect(schema.safeParse({ worker: '3/2' }).error?.issues[0]?.message).toBe('I/N needs I between 1 and N');
    expect(schema.safeParse({ worker: '0/2' }).error?.issues[0]?.message).toMatch(/must be I\/N/);
    expect(schema.safeParse({ lines: ['A/B'] }).error?.issues[0]?.message).toMatch(/must be a line id/);
    expect(schema.safeParse({ lines: [] }).error?.issues[0]?.message).toMatch(/at least one line/);
  });

  it('names a worker for its defaults and its health', () => {
    expect(ownershipLabel(ALL_LINES)).toBeUndefined();
    expect(ownershipLabel({ kind: 'lines', lines: ['A', 'B'] })).toBe('lines-A+B');
    expect(ownershipLabel({ kind: 'hash', index: 1, count: 2 })).toBe('worker-1-of-2');
    expect(describeOwnership({ kind: 'lines', lines: ['A', 'B'] })).toBe('lines A, B');
  });
});
