// workbench/timeline-diff.ts: added / missing / changed between two timelines, within a time tolerance.
import { describe, expect, it } from 'vitest';
import { DEFAULT_TOLERANCE_MS } from '../../contracts/timeline-tolerance.js';
import { describeItem, diffTimelines, isSameTimeline, type TimelineAlarm, type TimelineCommand } from '../../workbench/timeline-diff.js';

const command = (at: number, target: string, action: string, params: TimelineCommand['params'] = {}, extra: Partial<TimelineCommand> = {}): TimelineCommand => ({ kind: 'command', at, target, action, params, ...extra });
const alarm = (at: number, id: string, state: string, extra: Partial<TimelineAlarm> = {}): TimelineAlarm => ({ kind: 'alarm', at, id, state, ...extra });

describe('diffTimelines', () => {
  it('finds nothing between equal timelines, also when items differ in time within the tolerance and come in another order', () => {
    const baseline = [command(1_000, 'line-ctl', 'set_speed', { speed: 32 }), alarm(1_000, 'overheat:A/conv-2', 'active-unacked'), command(9_000, 'st-2', 'stop')];
    const candidate = [command(10_500, 'st-2', 'stop'), alarm(2_900, 'overheat:A/conv-2', 'active-unacked'), command(1_100, 'line-ctl', 'set_speed', { speed: 32 })];
    const diff = diffTimelines(baseline, candidate);
    expect(diff).toMatchObject({ added: [], missing: [], changed: [], same: 3, toleranceMs: DEFAULT_TOLERANCE_MS });
    expect(isSameTimeline(diff)).toBe(true);
  });

  it('an item moved beyond the tolerance is missing at its old time and added at its new one', () => {
    const diff = diffTimelines([command(60_000, 'line-ctl', 'set_speed', { speed: 32 })], [command(65_000, 'line-ctl', 'set_speed', { speed: 32 })]);
    expect(diff.missing.map((i) => i.at)).toEqual([60_000]);
    expect(diff.added.map((i) => i.at)).toEqual([65_000]);
    expect(diff.changed).toEqual([]);
    expect(isSameTimeline(diff)).toBe(false);
  });

  it('the tolerance is an option: 5 s makes the 5 s move the same item, 0 s demands the same millisecond', () => {
    const baseline = [command(60_000, 'line-ctl', 'set_speed', { speed: 32 })];
    expect(diffTimelines(baseline, [command(65_000, 'line-ctl', 'set_speed', { speed: 32 })], { toleranceMs: 5_000 }).same).toBe(1);
    const exact = diffTimelines(baseline, [command(60_001, 'line-ctl', 'set_speed', { speed: 32 })], { toleranceMs: 0 });
    expect([exact.missing.length, exact.added.length]).toEqual([1, 1]);
    expect(() => diffTimelines([], [], { toleranceMs: -1 })).toThrow(/toleranceMs must be a finite number ≥ 0; got -1/);
  });

  it('same target and action at about the same time with other params is changed, with both times and the field', () => {
    const diff = diffTimelines([command(60_000, 'line-ctl', 'set_speed', { speed: 32 })], [command(60_400, 'line-ctl', 'set_speed', { speed: 28 })]);
    expect(diff.added).toEqual([]);
    expect(diff.missing).toEqual([]);
    expect(diff.changed).toEqual([{ before: command(60_000, 'line-ctl', 'set_speed', { speed: 32 }), after: command(60_400, 'line-ctl', 'set_speed', { speed: 28 }), fields: ['params'] }]);
  });

  it('params compare by value whatever their key order; origin and id are never compared', () => {
    const diff = diffTimelines(
      [command(1_000, 'st-2', 'set_speed', { speed: 10, ramp: true }, { origin: 'rule:st-3-jam-stops-feeder', id: 'c1-1' })],
      [command(1_000, 'st-2', 'set_speed', { ramp: true, speed: 10 }, { origin: 'rule:jam-stops-feeder', id: 'c9-4' })],
    );
    expect(diff.same).toBe(1);
  });

  it('an outcome counts only when both sides know it', () => {
    expect(diffTimelines([command(1_000, 'st-2', 'stop', {}, { outcome: 'done' })], [command(1_000, 'st-2', 'stop')]).same).toBe(1);
    const diff = diffTimelines([command(1_000, 'st-2', 'stop', {}, { outcome: 'done' })], [command(1_000, 'st-2', 'stop', {}, { outcome: 'blocked' })]);
    expect(diff.changed.map((c) => c.fields)).toEqual([['outcome']]);
  });

  it('an alarm in another state near the same time is changed; identity by rule + device when there is no id', () => {
    const diff = diffTimelines([alarm(5_000, 'overheat:A/conv-2', 'active-unacked')], [alarm(5_500, 'overheat:A/conv-2', 'rtn-unacked')]);
    expect(diff.changed.map((c) => [c.before.at, c.after.at, c.fields])).toEqual([[5_000, 5_500, ['state']]]);
    const byRule = diffTimelines([{ kind: 'alarm', at: 0, rule: 'overheat', device: 'conv-2', state: 'raised' }], [{ kind: 'alarm', at: 10, rule: 'overheat', device: 'conv-2', state: 'raised' }]);
    expect(byRule.same).toBe(1);
    const otherDevice = diffTimelines([{ kind: 'alarm', at: 0, rule: 'overheat', device: 'conv-2', state: 'raised' }], [{ kind: 'alarm', at: 0, rule: 'overheat', device: 'conv-1', state: 'raised' }]);
    expect([otherDevice.missing.length, otherDevice.added.length, otherDevice.changed.length]).toEqual([1, 1, 0]);
  });

  it('other targets, actions or lines never pair: they are added and missing', () => {
    const diff = diffTimelines([command(1_000, 'st-2', 'stop'), command(2_000, 'st-2', 'stop', {}, { line: 'A' })], [command(1_000, 'st-3', 'stop'), command(2_000, 'st-2', 'stop', {}, { line: 'B' })]);
    expect(diff.missing.map(describeItem)).toEqual(['command st-2 stop {}', 'command st-2 stop {}']);
    expect(diff.added.map(describeItem)).toEqual(['command st-3 stop {}', 'command st-2 stop {}']);
  });

  it('an exact match wins over a nearer changed one, and repeated items pair nearest first, one to one', () => {
    // The candidate's 28 at 1 000 is nearer the baseline's 32 at 1 000 than its 32 at 2 500, yet the 32s are the same item.
    const diff = diffTimelines([command(1_000, 'line-ctl', 'set_speed', { speed: 32 })], [command(1_000, 'line-ctl', 'set_speed', { speed: 28 }), command(2_500, 'line-ctl', 'set_speed', { speed: 32 })]);
    expect(diff.same).toBe(1);
    expect(diff.added.map((i) => i.at)).toEqual([1_000]);
    // Three stops each side, the candidate's 300 ms later: each pairs with its own, none left over.
    const stops = diffTimelines([0, 10_000, 20_000].map((at) => command(at, 'st-2', 'stop')), [300, 10_300, 20_300].map((at) => command(at, 'st-2', 'stop')));
    expect(stops).toMatchObject({ same: 3, added: [], missing: [] });
    // Two in the baseline, one in the candidate: one is missing, the later one (the nearer pairs).
    const extra = diffTimelines([command(0, 'st-2', 'stop'), command(1_500, 'st-2', 'stop')], [command(1_400, 'st-2', 'stop')]);
    expect(extra.missing.map((i) => i.at)).toEqual([0]);
  });

  it('results come in time order', () => {
    const diff = diffTimelines([command(9_000, 'a', 'stop'), command(3_000, 'b', 'stop')], [command(7_000, 'c', 'stop'), command(1_000, 'd', 'stop')]);
    expect(diff.missing.map((i) => i.at)).toEqual([3_000, 9_000]);
    expect(diff.added.map((i) => i.at)).toEqual([1_000, 7_000]);
  });
});
