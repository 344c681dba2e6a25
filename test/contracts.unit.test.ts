import { describe, expect, it } from 'vitest';
import { PARSED_TOPICS_KEPT, parseTopic, topicMatches, topics } from '../contracts/topics.js';
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

  it('answers a topic the same the second time, past the memo bound and for a topic too long to keep', () => {
    const first = parseTopic('lw/A/st1/state');
    expect(parseTopic('lw/A/st1/state')).toEqual(first);
    expect(Object.isFrozen(parseTopic('lw/A/st1/state'))).toBe(true); // shared between callers, so nobody can change it
    expect(parseTopic('lw/A/st1/other')).toBeUndefined();
    expect(parseTopic('lw/A/st1/other')).toBeUndefined(); // a remembered "not a linewatch topic"
    for (let i = 0; i < PARSED_TOPICS_KEPT + 10; i++) expect(parseTopic(`lw/L${i % 50}/d${i}/telemetry`)).toEqual({ kind: 'telemetry', line: `L${i % 50}`, device: `d${i}` });
    expect(parseTopic('lw/A/st1/state')).toEqual({ kind: 'state', line: 'A', device: 'st1' });
    const longAlarm = `lw/${'L'.repeat(64)}/alarms/${'r'.repeat(64)}:${'x'.repeat(127)}/set`;
    expect(parseTopic(longAlarm)).toEqual({ kind: 'alarmSet', line: 'L'.repeat(64), alarm: `${'r'.repeat(64)}:${'x'.repeat(127)}` });
    const tooLong = `lw/A/${'d'.repeat(400)}/state`;
    expect(parseTopic(tooLong)).toBeUndefined();
    expect(parseTopic(tooLong)).toBeUndefined();
  });

  it('keeps remembering a topic in steady use while thousands of others come and go', () => {
    const steady = parseTopic('lw/S/steady/state');
    for (let i = 0; i < PARSED_TOPICS_KEPT * 3; i++) {
      parseTopic(`lw/S/passing-${i}/telemetry`);
      // The same object each time: it is answered from the memo, across the generations.
      if (i % 100 === 0) expect(parseTopic('lw/S/steady/state')).toBe(steady);
    }
    expect(parseTopic('lw/S/steady/state')).toBe(steady);
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

  it('refuses a reading named __proto__ instead of letting it vanish', () => {
    // JSON.parse makes "__proto__" an own key; copying it into a plain object would set the prototype instead.
    const r = validatePayload('telemetry', '{"ts":1,"seq":1,"values":{"__proto__":1,"temperature":2}}');
    expect(r).toEqual({ ok: false, error: 'telemetry.values: the name "__proto__" is not allowed: it names the prototype of a JavaScript object; rename it' });
  });

  it('refuses a command parameter named __proto__ instead of letting it vanish', () => {
    const r = validatePayload('cmd', '{"id":"c1","action":"set_speed","params":{"__proto__":1,"speed":20},"ts":1,"expiresAt":2,"origin":"test"}');
    expect(r.ok ? 'accepted' : r.error).toMatch(/params: the name "__proto__" is not allowed/);
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
  it('counts a known pattern exactly: gaps, duplicates, late, cross-kind reorder, restarts, strays, a big gap', () => {
    const t = new SequenceTracker();
    const verdicts: string[] = [];
    const send = (seq: number, ts: number): void => void verdicts.push(t.check('L/d', seq, ts));
    // Run 1, ts = 1000 + seq: 1..10, then 13..20 (11 and 12 lost).
    for (let seq = 1; seq <= 10; seq++) send(seq, 1000 + seq);
    for (let seq = 13; seq <= 20; seq++) send(seq, 1000 + seq);
    expect(t.counters).toMatchObject({ gaps: 1, missing: 2 });
    send(20, 1020); // QoS 1 redelivery
    send(5, 1005); // an old one again
    send(11, 1011); // late after all
    expect(t.counters).toMatchObject({ duplicates: 2, reorders: 1, missing: 1 });
    // Across kinds: telemetry 21, state 23 overtakes telemetry 22, then 24.
    send(21, 1021);
    send(23, 1023);
    send(22, 1022);
    send(24, 1024);
    expect(t.counters).toMatchObject({ gaps: 2, missing: 1, reorders: 2 });
    // The device restarts: seq 1 again, at a later time.
    send(1, 5001);
    send(2, 5002);
    send(3, 5003);
    // The gateway restarts and stamps from 0.
    send(0, 9000);
    send(1, 9001);
    send(2, 9002);
    expect(t.counters).toMatchObject({ resets: 2, missing: 1, duplicates: 2 });
    // The retained state of run 1 arrives after the new run's first messages.
    send(24, 1024);
    send(3, 9003);
    // A real loss of 2996 messages (4..2999), confirmed by the message after it.
    send(3000, 12000);
    send(3001, 12001);
    // A stray from another counter, then the run goes on.
    send(90000, 12002);
    send(3002, 12003);
    // A redelivery from far behind the window, and a duplicate within it.
    send(1500, 10500);
    send(3001, 12001);
    expect(t.counters).toEqual({ duplicates: 3, gaps: 3, missing: 2997, skipped: 2999, reorders: 2, resets: 2, stale: 3 });
    expect(verdicts.slice(0, 3)).toEqual(['first', 'next', 'next']);
    expect(verdicts.slice(-4)).toEqual(['pending', 'next', 'stale', 'duplicate']);
  });

  it('counts nothing missing when nothing was lost: cross-kind reorders, a stale retained state, a redelivery burst (20 devices)', () => {
    const t = new SequenceTracker();
    for (let device = 0; device < 20; device++) {
      const id = `L/dev-${device}`;
      // Arrival order: 0..999, every pair (10k+3, 10k+4) swapped.
      const order: number[] = [];
      for (let seq = 0; seq < 1000; seq++) order.push(seq % 10 === 3 ? seq + 1 : seq % 10 === 4 ? seq - 1 : seq);
      order.forEach((seq, i) => {
        t.check(id, seq, 1_700_000_000_000 + seq);
        // The state retained from the device's previous run (higher seq, older time) arrives late.
        if (i === 2) t.check(id, 20_000 + device, 1_600_000_000_000);
        // A reconnect redelivers the last 100 unacknowledged messages.
        if (i === 700) for (const again of order.slice(601, 701)) t.check(id, again, 1_700_000_000_000 + again);
      });
    }
    expect(t.counters).toEqual({ duplicates: 2000, gaps: 2000, missing: 0, skipped: 2000, reorders: 2000, resets: 0, stale: 20 });
  });

  it('tracks devices independently', () => {
    const t = new SequenceTracker();
    t.check('a', 10, 1);
    expect(t.check('b', 10, 1)).toBe('first');
    expect(t.check('a', 11, 2)).toBe('next');
    t.check('a', 13, 3);
    // A late message of c (before its first one) does not take a's missing one off.
    t.check('c', 12, 2);
    expect(t.check('c', 11, 1)).toBe('reorder');
    expect(t.counters).toMatchObject({ missing: 1, reorders: 1 });
  });
});
