// The one layer over Tahu's codec (sparkplug/codec.ts): Long values become numbers, or the payload
// is refused; topics and command values are read as the spec says; the edge-node ACL grants only
// the account's own group and edge node.
import { describe, expect, it } from 'vitest';
import { rulesFor, mayPublish, maySubscribe } from '../../broker/acl.js';
import { roleGrants } from '../../config/services.js';
import { decodeSparkplug, encodeSparkplug, parseSparkplugTopic, writeValue } from '../../sparkplug/index.js';
import { readingNameOf } from '../../sparkplug/metrics.js';

describe('sparkplug codec layer', () => {
  it('turns the Long timestamp, seq, bdSeq and alias into numbers and keeps each datatype', () => {
    const ts = 1_764_000_000_123;
    const payload = decodeSparkplug(encodeSparkplug({ timestamp: ts, seq: 200, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 5 }, { name: 'Motor/Temp', alias: 3, type: 'Float', value: 1.5 }, { name: 'on', type: 'Boolean', value: true }] }));
    expect(payload).toEqual({ timestamp: ts, seq: 200, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 5 }, { name: 'Motor/Temp', alias: 3, type: 'Float', value: 1.5 }, { name: 'on', type: 'Boolean', value: true }] });
  });

  it('refuses what is not protobuf, and a uint64 beyond 2^53, with the reason', () => {
    expect(() => decodeSparkplug(Buffer.from('not protobuf at all'))).toThrow(/not a Sparkplug B payload/);
    const big = encodeSparkplug({ timestamp: 1, metrics: [{ name: 'count', type: 'UInt64', value: '18446744073709551615' as unknown as number }] });
    expect(() => decodeSparkplug(big)).toThrow(/metric count 18446744073709551615 is beyond 2\^53/);
  });

  it('parses node, device and STATE topics and nothing else', () => {
    expect(parseSparkplugTopic('spBv1.0/G1/NBIRTH/e1')).toEqual({ kind: 'node', type: 'NBIRTH', group: 'G1', edge: 'e1' });
    expect(parseSparkplugTopic('spBv1.0/G1/DDATA/e1/d1')).toEqual({ kind: 'device', type: 'DDATA', group: 'G1', edge: 'e1', device: 'd1' });
    expect(parseSparkplugTopic('spBv1.0/STATE/host')).toEqual({ kind: 'state', hostId: 'host' });
    expect(parseSparkplugTopic('spBv1.0/G1/DDATA/e1')).toBeUndefined();
    expect(parseSparkplugTopic('spAv1.0/G1/NBIRTH/e1')).toBeUndefined();
  });

  it('checks a command value against the metric datatype', () => {
    expect(writeValue('Float', 12.5)).toBe(12.5);
    expect(writeValue('Int32', 12.5)).toEqual({ problem: '12.5 is not an integer' });
    expect(writeValue('Boolean', 'yes')).toEqual({ problem: '"yes" is not a boolean' });
    expect(readingNameOf('Motor/Temp 1')).toBe('Motor_Temp_1');
    expect(readingNameOf('1st')).toBe('_1st');
  });

  it('grants an edge node account GROUP/EDGE its own topics only', () => {
    const rules = rulesFor(roleGrants(), 'sparkplug-edge', 'G1/e1');
    expect(mayPublish(rules, 'spBv1.0/G1/NBIRTH/e1')).toBe(true);
    expect(mayPublish(rules, 'spBv1.0/G1/DDATA/e1/d1')).toBe(true);
    expect(mayPublish(rules, 'spBv1.0/G1/NBIRTH/e2')).toBe(false);
    expect(mayPublish(rules, 'spBv1.0/G2/NBIRTH/e1')).toBe(false);
    expect(mayPublish(rules, 'lw/G1/e1/state')).toBe(false);
    expect(maySubscribe(rules, 'spBv1.0/G1/NCMD/e1/#')).toBe(true);
    expect(maySubscribe(rules, 'spBv1.0/G1/DCMD/e2/#')).toBe(false);
    // A device account (also two parts) gets no Sparkplug grant.
    expect(mayPublish(rulesFor(roleGrants(), 'device', 'G1/e1'), 'spBv1.0/G1/NBIRTH/e1')).toBe(false);
  });
});
