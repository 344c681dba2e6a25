// Codecs and the bounded framer, byte for byte.
import { describe, expect, it } from 'vitest';
import { LineFramer, ndjsonCodec, textCodec, xorChecksum, type FrameDropReason } from '../../../contracts/serial/index.js';
import type { CommandPayload } from '../../../contracts/index.js';

const cmd: CommandPayload = { id: 'c-1', action: 'set_speed', params: { speed: 12.5 }, origin: 'rule:x', ts: 1, expiresAt: 1767000005000 };

describe('text codec', () => {
  it('computes the NMEA XOR checksum', () => {
    expect(xorChecksum('ST,RUNNING')).toBe('6C'); // computed independently with Python's reduce(xor)
    expect(textCodec.encodeEvent('state', { state: 'RUNNING' })).toBe('$ST,RUNNING*6C\n');
  });

  it('round-trips every sentence', () => {
    const line = (s: string) => s.trimEnd();
    expect(textCodec.decodeEvent(line(textCodec.encodeEvent('state', { state: 'FAULT', reason: 'jam, badly' })))).toEqual({ ok: true, value: { kind: 'state', body: { state: 'FAULT', reason: 'jam; badly' } } });
    expect(textCodec.decodeEvent(line(textCodec.encodeEvent('telemetry', { values: { speed: 12.5, motorTemp: -3 } })))).toEqual({ ok: true, value: { kind: 'telemetry', body: { values: { speed: 12.5, motorTemp: -3 } } } });
    expect(textCodec.decodeEvent(line(textCodec.encodeEvent('ack', { id: 'c-1', result: 'rejected', reason: 'too fast' })))).toEqual({ ok: true, value: { kind: 'ack', body: { id: 'c-1', result: 'rejected', reason: 'too fast' } } });
    expect(textCodec.decodeEvent(line(textCodec.encodeEvent('status', { status: 'online' })))).toEqual({ ok: true, value: { kind: 'status', body: { status: 'online' } } });
    const back = textCodec.decodeCommand(line(textCodec.encodeCommand(cmd)));
    expect(back).toMatchObject({ ok: true, value: { id: 'c-1', action: 'set_speed', params: { speed: 12.5 }, expiresAt: 1767000005000 } });
  });

  it('says why a line is dropped', () => {
    expect(textCodec.decodeEvent('$ST,RUNNING*00')).toMatchObject({ ok: false, reason: 'checksum', detail: 'checksum 00, expected 6C' });
    expect(textCodec.decodeEvent('xx$ST,RUNNING*6C')).toMatchObject({ ok: false, reason: 'garbage' });
    expect(textCodec.decodeEvent('\u0001\u0002\u00ff')).toMatchObject({ ok: false, reason: 'garbage' });
    expect(textCodec.decodeEvent(`$ZZ,1*${xorChecksum('ZZ,1')}`)).toMatchObject({ ok: false, reason: 'unknown_sentence' });
    expect(textCodec.decodeEvent(`$TM,speed=fast*${xorChecksum('TM,speed=fast')}`)).toMatchObject({ ok: false, reason: 'bad_field' });
  });
});

describe('ndjson codec', () => {
  it('round-trips events and commands', () => {
    const frame = ndjsonCodec.encodeEvent('telemetry', { ts: 5, seq: 1, values: { speed: 3 } });
    expect(frame.endsWith('\n')).toBe(true);
    expect(ndjsonCodec.decodeEvent(frame.trimEnd())).toEqual({ ok: true, value: { kind: 'telemetry', body: { ts: 5, seq: 1, values: { speed: 3 } } } });
    expect(ndjsonCodec.decodeCommand(ndjsonCodec.encodeCommand(cmd).trimEnd())).toEqual({ ok: true, value: cmd });
    expect(ndjsonCodec.decodeEvent('{"kind":"telemetry",')).toMatchObject({ ok: false, reason: 'garbage' });
    expect(ndjsonCodec.decodeEvent('{"kind":"weather"}')).toMatchObject({ ok: false, reason: 'unknown_sentence' });
  });
});

describe('LineFramer', () => {
  it('splits across chunks, strips CR, and bounds what it holds', () => {
    const lines: string[] = [];
    const drops: [FrameDropReason, number][] = [];
    const f = new LineFramer(16, (l) => lines.push(l.toString()), (r, n) => drops.push([r, n]));
    f.push(Buffer.from('ab'));
    f.push(Buffer.from('c\r\nde'));
    f.push(Buffer.from('f\n'));
    f.push(Buffer.from('x'.repeat(10)));
    f.push(Buffer.from('y'.repeat(10))); // 20 > 16: dropped, skipped to the next newline
    f.push(Buffer.from('zzz\nok\n'));
    f.push(Buffer.from('half'));
    f.reset();
    expect(lines).toEqual(['abc', 'def', 'ok']);
    expect(drops).toEqual([
      ['overlong', 20],
      ['partial', 4],
    ]);
  });
});

describe('text codec checksum over UTF-8', () => {
  it('XORs bytes, not UTF-16 code units', () => {
    // "–" (U+2013) is E2 80 93 in UTF-8: 0xE2 ^ 0x80 ^ 0x93 = 0xF1.
    expect(xorChecksum('–')).toBe('F1');
    const frame = textCodec.encodeEvent('ack', { id: 'c-9', result: 'rejected', reason: 'speed 61 is outside 0–60 m/min' });
    expect(textCodec.decodeEvent(frame.trimEnd())).toMatchObject({ ok: true, value: { kind: 'ack', body: { reason: 'speed 61 is outside 0–60 m/min' } } });
  });
});
