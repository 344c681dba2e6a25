import { describe, expect, it } from 'vitest';
import { parseTopic, topicMatches, topics } from '../contracts/topics.js';
import { validatePayload, MAX_PAYLOAD_BYTES } from '../contracts/validate.js';
import { MAX_TIMESTAMP_MS } from '../contracts/schemas.js';
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

describe('payload validation: what becomes an InfluxDB tag or time', () => {
  const tomorrow = (): number => {
    const now = new Date();
    return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1, 0, 0, 1);
  };

  it('refuses the line-protocol injection event: a station with a newline', () => {
    const r = validatePayload('telemetry', `{"ts":${tomorrow()},"seq":11,"station":"x\\nstate","values":{"state":1}}`);
    expect(r).toEqual({ ok: false, error: 'telemetry.station: must be a station id: 1–64 of A–Z a–z 0–9 _ - (the device id pattern; no spaces, newlines or punctuation)' });
  });

  it('holds every free-form string that becomes a tag to an id pattern', () => {
    const bad = (kind: Parameters<typeof validatePayload>[0], payload: unknown): string => {
      const r = validatePayload(kind, JSON.stringify(payload));
      return r.ok ? 'accepted' : r.error;
    };
    expect(bad('state', { ts: 1, seq: 1, state: 'IDLE', station: 'bay 1,east=2' })).toMatch(/^state\.station: must be a station id/);
    expect(bad('telemetry', { ts: 1, seq: 1, values: {}, station: 'a\\' })).toMatch(/^telemetry\.station: must be a station id/);
    expect(bad('alert', { id: 'a', rule: 'r', severity: 'info', state: 'raised', message: 'm', device: 'x\nstate', ts: 1 })).toMatch(/^alert\.device: must be a device id/);
    expect(bad('alert', { id: 'a', rule: 'r\nx', severity: 'info', state: 'raised', message: 'm', ts: 1 })).toMatch(/^alert\.rule: must be a rule id/);
    expect(bad('outcome', { id: 'c', action: 'stop', origin: 'o', target: 'a b', outcome: 'done', attempts: 1, issuedAt: 1, ts: 1 })).toMatch(/^outcome\.target: must be a device id/);
    expect(bad('alert', { id: 'a', rule: 'overheat.v2', severity: 'info', state: 'raised', message: 'line 1\nline 2', device: 'conv-2', ts: 1 })).toBe('accepted');
    expect(bad('state', { ts: 1, seq: 1, state: 'IDLE', station: 'st-1_a' })).toBe('accepted');
  });

  it('refuses reading names outside the pattern, and a reading beside its own renamed form', () => {
    const r = validatePayload('telemetry', JSON.stringify({ ts: 1, seq: 1, values: { 'x\nstate': 1 } }));
    expect(r).toEqual({ ok: false, error: 'telemetry.values: reading name "x\\nstate" is not allowed: use 1–64 of A–Z a–z 0–9 _, not starting with a digit' });
    const both = validatePayload('telemetry', JSON.stringify({ ts: 1, seq: 1, values: { device: 1, device_value: 2 } }));
    expect(both).toEqual({ ok: false, error: 'telemetry.values.device_value: a reading named "device" is stored as "device_value", so both cannot be sent in one message; rename one' });
    expect(validatePayload('telemetry', JSON.stringify({ ts: 1, seq: 1, values: { device: 1, time: 2, temperature: 3 } })).ok).toBe(true);
  });

  it('bounds ts to what InfluxDB can store, with room for the nanosecond disambiguator', () => {
    const r = validatePayload('telemetry', JSON.stringify({ ts: 9007199254740991, seq: 1, values: {} }));
    expect(r).toEqual({ ok: false, error: 'telemetry.ts: must be at most 9223372036853 (2262-04-11T23:47:16.853Z), the latest time InfluxDB can store; send ms since the Unix epoch' });
    expect(validatePayload('state', JSON.stringify({ ts: MAX_TIMESTAMP_MS, seq: 1, state: 'IDLE' })).ok).toBe(true);
    expect(validatePayload('state', JSON.stringify({ ts: MAX_TIMESTAMP_MS + 1, seq: 1, state: 'IDLE' })).ok).toBe(false);
    // The largest point time the historian can write: ts ms and a disambiguator of 999999 ns.
    expect(BigInt(MAX_TIMESTAMP_MS) * 1_000_000n + 999_999n).toBeLessThanOrEqual(9_223_372_036_854_775_806n);
    expect(BigInt(MAX_TIMESTAMP_MS + 1) * 1_000_000n + 999_999n).toBeGreaterThan(9_223_372_036_854_775_806n);
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
