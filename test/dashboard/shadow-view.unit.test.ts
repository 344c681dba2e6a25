// The dashboard's shadow-vs-live view (GET /api/shadow): commands of one side with no counterpart
// (same line, target, action, params, within the tolerance) on the other, once the tolerance has passed.
import { describe, expect, it } from 'vitest';
import { ShadowView } from '../../dashboard/server/shadow-view.js';
import { parseTopic, shadowTopic, unshadowTopic } from '../../contracts/topics.js';
import { DEFAULT_TOLERANCE_MS } from '../../contracts/timeline-tolerance.js';

const T = 1_767_000_000_000;
const command = (id: string, ts: number, params: Record<string, number | string>, action = 'set_speed'): Buffer =>
  Buffer.from(JSON.stringify({ id, action, params, origin: 'rule:r', ts, expiresAt: ts + 10_000 }));

describe('the shadow root', () => {
  it('moves a live topic under lw/_shadow/ and back; no shadow topic parses as a device topic', () => {
    expect(shadowTopic('lw/A/line-ctl/cmd')).toBe('lw/_shadow/A/line-ctl/cmd');
    expect(shadowTopic('lw/+/alarms/+')).toBe('lw/_shadow/+/alarms/+');
    expect(unshadowTopic('lw/_shadow/A/alerts')).toBe('lw/A/alerts');
    expect(unshadowTopic('lw/A/alerts')).toBeUndefined();
    expect(() => shadowTopic('lw/_shadow/A/alerts')).toThrow(/not a live linewatch topic/);
    for (const live of ['lw/A/line-ctl/cmd', 'lw/A/line-ctl/cmd/outcome', 'lw/A/alerts', 'lw/A/alarms/hot:A.conv-1', 'lw/A/alarms/hot:A.conv-1/set', 'lw/_dead/rules']) {
      expect(parseTopic(shadowTopic(live)), live).toBeUndefined();
    }
  });
});

describe('ShadowView', () => {
  it("matches within rules diff's default tolerance unless told (the one contracts/ states)", () => {
    let now = T;
    const view = new ShadowView({ now: () => now });
    view.handle('lw/A/line-ctl/cmd', command('c1', T, { speed: 20 }));
    view.handle('lw/_shadow/A/line-ctl/cmd', command('s1', T + DEFAULT_TOLERANCE_MS, { speed: 20 })); // at the tolerance: the same
    view.handle('lw/A/line-ctl/cmd', command('c2', T + 10_000, { speed: 40 }));
    view.handle('lw/_shadow/A/line-ctl/cmd', command('s2', T + 10_000 + DEFAULT_TOLERANCE_MS + 1, { speed: 40 })); // 1 ms beyond: not
    now = T + 60_000;
    const report = view.report();
    expect(report.toleranceMs).toBe(DEFAULT_TOLERANCE_MS);
    expect(report.differences.map((d) => [d.side, d.id]).sort()).toEqual([['live-only', 'c2'], ['shadow-only', 's2']]);
  });

  it('lists a shadow command with no live counterpart and the reverse, once the tolerance has passed; matched ones not', () => {
    let now = T;
    const view = new ShadowView({ toleranceMs: 2000, now: () => now });
    expect(view.report()).toMatchObject({ active: false, differences: [] });
    view.handle('lw/A/line-ctl/cmd', command('c1', T, { speed: 20 }));
    view.handle('lw/_shadow/A/line-ctl/cmd', command('s1', T + 1500, { speed: 20 })); // the same, 1.5 s later
    view.handle('lw/_shadow/A/line-ctl/cmd', command('s2', T + 3000, { strategy: 'energy-saving' }, 'set_strategy'));
    view.handle('lw/A/line-ctl/cmd', command('c2', T + 4000, { speed: 40 }));
    view.handle('lw/_shadow/A/line-ctl/cmd', command('s3', T + 7000, { speed: 32 })); // not the same params
    view.handle('lw/A/line-ctl/cmd', command('c2', T + 4000, { speed: 40 })); // a re-send: once
    now = T + 5500; // s2 (3 s) is more than the tolerance old, c2 (4 s) not yet
    expect(view.report().differences.map((d) => [d.side, d.id])).toEqual([['shadow-only', 's2']]);
    now = T + 20_000;
    const report = view.report();
    expect(report).toMatchObject({ active: true, toleranceMs: 2000, live: 2, shadow: 3 });
    expect(report.differences.map((d) => [d.side, d.id, d.device, d.action])).toEqual([
      ['shadow-only', 's3', 'line-ctl', 'set_speed'],
      ['live-only', 'c2', 'line-ctl', 'set_speed'],
      ['shadow-only', 's2', 'line-ctl', 'set_strategy'],
    ]);
  });
  it("judges what has settled in the line's event time: a line in 2030 (×20) has its differences listed, and only once they settled there", () => {
    const DEVICE = Date.UTC(2030, 0, 1);
    let now = T; // the dashboard's (host) clock
    const view = new ShadowView({ toleranceMs: 2000, now: () => now });
    const reading = (ts: number): Buffer => Buffer.from(JSON.stringify({ ts, seq: 1, values: { motorTemp: 90 } }));
    view.handle('lw/A/conv-2/telemetry', reading(DEVICE));
    view.handle('lw/_shadow/A/line-ctl/cmd', command('s1', DEVICE + 50, { speed: 20 })); // no live counterpart
    view.handle('lw/B/line-ctl/cmd', command('c9', T - 10_000, { speed: 30 })); // line B: no device heard, host time
    now = T + 1000;
    view.handle('lw/A/conv-2/telemetry', reading(DEVICE + 20_000)); // 1 s of host time, 20 s of the line's
    expect(view.report().differences.map((d) => [d.side, d.id])).toEqual([['shadow-only', 's1'], ['live-only', 'c9']]);

    const early = new ShadowView({ toleranceMs: 2000, now: () => now });
    early.handle('lw/A/conv-2/telemetry', reading(DEVICE));
    early.handle('lw/_shadow/A/line-ctl/cmd', command('s1', DEVICE + 50, { speed: 20 }));
    now += 1000; // the line at DEVICE + 1000: not settled yet
    expect(early.report().differences).toEqual([]);
    now += 1100; // DEVICE + 2100: more than the tolerance after s1
    expect(early.report().differences.map((d) => d.id)).toEqual(['s1']);
  });
});
