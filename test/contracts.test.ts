import { describe, expect, it } from 'vitest';
import { parseTopic, topicMatches, topics } from '../contracts/topics.js';
import { validatePayload, MAX_PAYLOAD_BYTES } from '../contracts/validate.js';
import { SequenceTracker } from '../contracts/sequence.js';

describe('topics', () => {
  it('builds and parses every device and line topic', () => {
    expect(parseTopic(topics.state('A', 'st1'))).toEqual({ kind: 'state', line: 'A', device: 'st1' });
    expect(parseTopic(topics.ack('A', 'conv-2'))).toEqual({ kind: 'ack', line: 'A', device: 'conv-2' });
    expect(parseTopic(topics.cmd('A', 'ctl'))).toEqual({ kind: 'cmd', line: 'A', device: 'ctl' });
    expect(parseTopic(topics.alerts('A'))).toEqual({ kind: 'alert', line: 'A' });
    expect(parseTopic(topics.summary('A'))).toEqual({ kind: 'summary', line: 'A' });
  });

  it('rejects topics outside the namespace', () => {
    expect(parseTopic('lw/A/st1/other')).toBeUndefined();
    expect(parseTopic('foo/A/st1/state')).toBeUndefined();
    expect(parseTopic('lw/A+/st1/state')).toBeUndefined();
    expect(parseTopic('lw/A')).toBeUndefined();
  });

  it('matches MQTT filters', () => {
    expect(topicMatches('lw/+/+/state', 'lw/A/x/state')).toBe(true);
    expect(topicMatches('lw/#', 'lw/A/x/cmd/ack')).toBe(true);
    expect(topicMatches('lw/+/+/cmd', 'lw/A/x/cmd/ack')).toBe(false);
    expect(topicMatches('#', '$SYS/broker/clients')).toBe(false);
    expect(topicMatches('lw/A/#', 'lw/A')).toBe(true);
  });
});

describe('payload validation', () => {
  it('accepts a valid telemetry message', () => {
    const r = validatePayload('telemetry', JSON.stringify({ ts: 1, seq: 2, values: { temperature: 61.5 } }));
    expect(r).toEqual({ ok: true, value: { ts: 1, seq: 2, values: { temperature: 61.5 } } });
  });

  it('names the field and what was wrong', () => {
    const r = validatePayload('telemetry', JSON.stringify({ ts: 1, seq: 2, values: { temperature: 'hot' } }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/^telemetry\.values\.temperature: .*number/);
  });

  it('refuses unknown fields and bad enums', () => {
    const r = validatePayload('state', JSON.stringify({ ts: 1, seq: 1, state: 'DANCING', extra: 1 }));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toContain('state.state');
      expect(r.error).toContain('extra');
    }
  });

  it('says when the payload is not JSON', () => {
    const r = validatePayload('state', '{"ts":');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/^state: payload is not valid JSON/);
  });

  it('refuses an oversized payload before parsing it', () => {
    const r = validatePayload('telemetry', Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 0x20));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(`more than the ${MAX_PAYLOAD_BYTES} allowed`);
  });

  it('fills command defaults', () => {
    const r = validatePayload('cmd', JSON.stringify({ id: 'c1', action: 'stop', origin: 'rule:x', ts: 1, expiresAt: 2 }));
    expect(r.ok && r.value.params).toEqual({});
  });
});

describe('SequenceTracker', () => {
  it('recognises next, duplicate, gap, reorder and reset', () => {
    const t = new SequenceTracker();
    expect(t.check('d', 1)).toBe('first');
    expect(t.check('d', 2)).toBe('next');
    expect(t.check('d', 2)).toBe('duplicate');
    expect(t.check('d', 5)).toBe('gap');
    expect(t.counters.missing).toBe(2);
    expect(t.check('d', 4)).toBe('reorder');
    expect(t.counters.missing).toBe(1);
    expect(t.check('d', 4)).toBe('duplicate');
    expect(t.check('d', 1)).toBe('duplicate');
    expect(t.check('d', 6)).toBe('next');
    t.check('d', 500);
    expect(t.check('d', 0)).toBe('reset');
    expect(t.counters).toMatchObject({ duplicates: 3, gaps: 2, reorders: 1, resets: 1 });
  });

  it('tracks devices independently', () => {
    const t = new SequenceTracker();
    t.check('a', 10);
    expect(t.check('b', 10)).toBe('first');
    expect(t.check('a', 11)).toBe('next');
  });
});
