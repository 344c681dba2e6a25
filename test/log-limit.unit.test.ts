// The log rate limiter with an injected clock and a real pino logger writing into an array.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LogLimiter } from '../lib/log-limit.js';

interface Line {
  level: number;
  msg: string;
  kind?: string;
  suppressed?: number;
  n?: number;
}

function capture(): { logger: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
  return { logger, lines };
}

describe('LogLimiter', () => {
  it('writes the first N lines of a kind per interval, then one summary with the exact count', () => {
    const { logger, lines } = capture();
    let now = 1_000;
    const limiter = new LogLimiter(logger, { linesPerInterval: 3, intervalMs: 10_000, now: () => now });
    for (let n = 0; n < 50; n++) limiter.write('warn', 'refused', { n }, 'refused a client');
    expect(lines.map((l) => l.n)).toEqual([0, 1, 2]);

    now += 9_999;
    limiter.flush(); // the interval is not over yet
    expect(lines).toHaveLength(3);

    now += 1;
    limiter.flush();
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatchObject({ level: pino.levels.values.warn, kind: 'refused', suppressed: 47 });
    expect(lines[3]!.msg).toMatch(/suppressed 47 similar messages/);

    limiter.write('warn', 'refused', { n: 50 }, 'refused a client'); // a new interval starts afresh
    expect(lines.at(-1)?.n).toBe(50);
  });

  it('counts each kind on its own and summarizes when the next line of a kind arrives after its interval', () => {
    const { logger, lines } = capture();
    let now = 0;
    const limiter = new LogLimiter(logger, { linesPerInterval: 1, intervalMs: 100, now: () => now });
    for (let n = 0; n < 5; n++) {
      limiter.write('info', 'a', { n }, 'a');
      limiter.write('info', 'b', { n }, 'b');
    }
    expect(lines.map((l) => `${l.msg}${l.n}`)).toEqual(['a0', 'b0']);
    now = 150;
    limiter.write('info', 'a', { n: 5 }, 'a');
    expect(lines.slice(2).map((l) => l.suppressed ?? l.n)).toEqual([4, 5]);
    limiter.flush();
    expect(lines.at(-1)).toMatchObject({ kind: 'b', suppressed: 4 });
  });

  it('writes no summary for an interval that suppressed nothing', () => {
    const { logger, lines } = capture();
    let now = 0;
    const limiter = new LogLimiter(logger, { linesPerInterval: 5, intervalMs: 100, now: () => now });
    limiter.write('info', 'quiet', {}, 'once');
    now = 1_000;
    limiter.flush();
    expect(lines.map((l) => l.msg)).toEqual(['once']);
  });

  it('builds lazy fields only for a line it writes (a costly snapshot, e.g. the historian counters)', () => {
    const { logger, lines } = capture();
    let now = 0;
    let built = 0;
    const fields = (): object => ({ n: ++built });
    const limiter = new LogLimiter(logger, { linesPerInterval: 1, intervalMs: 100, now: () => now });
    for (let k = 0; k < 20; k++) limiter.write('error', 'spool_full', fields, 'refusing events');
    expect(built).toBe(1);
    expect(lines).toEqual([expect.objectContaining({ n: 1, level: pino.levels.values.error, msg: 'refusing events' })]);
    now = 100;
    limiter.write('error', 'spool_full', fields, 'refusing events');
    expect(built).toBe(2);
    expect(lines.slice(1).map((l) => l.suppressed ?? l.n)).toEqual([19, 2]);
  });
});
