// contracts/decode.ts and the one kind → topic mapping with its delivery rule (contracts/topics.ts).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decode, DELIVERY, parseTopic, topicOf, type MessageKind } from '../contracts/index.js';

const KINDS = Object.keys(DELIVERY) as MessageKind[];
const LINE_KINDS: readonly MessageKind[] = ['alert', 'summary', 'oeePeriod', 'downtime'];
const isLineKind = (kind: MessageKind): kind is 'alert' | 'summary' | 'oeePeriod' | 'downtime' => LINE_KINDS.includes(kind);

/** A topic of `kind` on `line`, naming `device` or the alarm `overheat:A/conv-1` as the kind needs. */
function topicFor(kind: MessageKind, line: string, device: string, alarmId: string): string {
  if (isLineKind(kind)) return topicOf(kind, line);
  if (kind === 'alarm' || kind === 'alarmSet') return topicOf(kind, line, alarmId);
  return topicOf(kind, line, device);
}

describe('topicOf and DELIVERY', () => {
  it('gives every kind the topic parseTopic reads back as that kind', () => {
    for (const kind of KINDS) {
      const topic = topicFor(kind, 'A', 'conv-1', 'overheat:A/conv-1');
      const expected = isLineKind(kind) ? { kind, line: 'A' } : kind === 'alarm' || kind === 'alarmSet' ? { kind, line: 'A', alarm: 'overheat:A.conv-1' } : { kind, line: 'A', device: 'conv-1' };
      expect(parseTopic(topic), topic).toEqual(expected);
    }
  });

  it('is the QoS / retain column of docs/topics-and-payloads.md', () => {
    const doc = readFileSync(new URL('../docs/topics-and-payloads.md', import.meta.url), 'utf8');
    for (const kind of KINDS) {
      const topic = topicFor(kind, '{line}', '{device}', '{alarmId}');
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${topic}\` |`));
      expect(row, `a row for ${topic}`).toBeDefined();
      const column = row!.split('|')[3]!.trim();
      expect(column.startsWith(String(DELIVERY[kind].qos)), `${topic}: ${column}`).toBe(true);
      expect(column.includes('retained'), `${topic}: ${column}`).toBe(DELIVERY[kind].retain);
    }
  });
});

describe('decode', () => {
  it('gives the kind, line, device and the validated payload', () => {
    expect(decode('lw/A/conv-1/cmd/ack', JSON.stringify({ id: 'c1', result: 'done', ts: 5 }))).toEqual({
      ok: true,
      message: { kind: 'ack', line: 'A', device: 'conv-1', payload: { id: 'c1', result: 'done', ts: 5 } },
    });
    // Defaults of the schema are filled in; a line-level kind has no device.
    expect(decode('lw/A/conv-1/cmd', JSON.stringify({ id: 'c1', action: 'stop', origin: 'rule:x', ts: 1, expiresAt: 2 }))).toMatchObject({ ok: true, message: { payload: { params: {} } } });
    expect(decode('lw/A/alerts', JSON.stringify({ id: 'a', rule: 'r', severity: 'info', state: 'raised', message: 'm', ts: 1 }))).toMatchObject({ ok: true, message: { kind: 'alert', line: 'A', device: undefined } });
  });

  it('names the field of a payload that fails its schema, and says which topic it was', () => {
    expect(decode('lw/A/st-1/state', JSON.stringify({ ts: 1, seq: 1, state: 'DANCING' }))).toEqual({
      ok: false,
      reason: 'schema',
      topic: { kind: 'state', line: 'A', device: 'st-1' },
      error: expect.stringMatching(/^state\.state: /),
    });
    expect(decode('lw/A/st-1/telemetry', '{"ts":')).toMatchObject({ ok: false, reason: 'schema', error: expect.stringMatching(/^telemetry: payload is not valid JSON/) });
  });

  it('reads an alarm state (its id must be the topic’s), an emptied alarm topic as removed, and an operator request', () => {
    const alarm = { id: 'overheat:A/conv-1', rule: 'overheat', severity: 'warning', message: 'hot', device: 'conv-1', state: 'active-unacked', transition: 'raise', raisedAt: 1, rev: 1, ts: 1 };
    expect(decode('lw/A/alarms/overheat:A.conv-1', JSON.stringify(alarm))).toEqual({ ok: true, message: { kind: 'alarm', line: 'A', device: undefined, alarm: 'overheat:A.conv-1', payload: alarm } });
    expect(decode('lw/A/alarms/other:A.conv-1', JSON.stringify(alarm))).toMatchObject({ ok: false, reason: 'schema', error: expect.stringMatching(/^alarm\.id: "overheat:A\/conv-1" is not the alarm of this topic/) });
    expect(decode('lw/A/alarms/overheat:A.conv-1', '')).toMatchObject({ ok: false, reason: 'removed', topic: { kind: 'alarm', line: 'A', alarm: 'overheat:A.conv-1' } });
    expect(decode('lw/A/alarms/overheat:A.conv-1/set', JSON.stringify({ action: 'shelve', operator: 'user:ana', ts: 1 }))).toMatchObject({ ok: false, reason: 'schema', error: expect.stringMatching(/^alarmSet\.shelveForMs: shelve needs shelveForMs/) });
    expect(decode('lw/A/alarms/overheat:A.conv-1/set', JSON.stringify({ action: 'acknowledge', operator: 'user:ana', comment: 'seen', ts: 1 }))).toMatchObject({ ok: true, message: { kind: 'alarmSet', alarm: 'overheat:A.conv-1' } });
    // A device named "alarms" keeps its topics: a device id has no ':'.
    expect(parseTopic('lw/A/alarms/state')).toEqual({ kind: 'state', line: 'A', device: 'alarms' });
  });

  it('parses nothing outside the namespace', () => {
    expect(decode('lw/_dead/A_st-1', '{}')).toMatchObject({ ok: false, reason: 'topic', error: expect.stringMatching(/not a linewatch topic/) });
    expect(decode('$SYS/linewatch/stats', '{}')).toMatchObject({ ok: false, reason: 'topic' });
  });
});
