// One message → one point: exact line protocol, escaping, the time with its disambiguator.
import { describe, expect, it } from 'vitest';
import { PointBuilder, toPoint } from '../../historian/points.js';

const T = 1_700_000_000_123;

describe('toPoint', () => {
  it('writes telemetry as floats with seq in the nanosecond digits of the device time', () => {
    const p = toPoint('lw/A/conv-1/telemetry', JSON.stringify({ ts: T, seq: 42, values: { speed: 12, temp: 61.5 }, type: 'conveyor' }));
    expect(p).toMatchObject({ ok: true, measurement: 'telemetry', lineId: 'A', device: 'conv-1' });
    expect(p.ok && p.line).toBe(`telemetry,device=conv-1,line=A,type=conveyor speed=12,temp=61.5,seq=42i ${T}000042`);
  });

  it('gives the same event the same point and distinct events of one millisecond distinct times', () => {
    const a = toPoint('lw/A/d/telemetry', JSON.stringify({ ts: T, seq: 1, values: { v: 1 } }));
    const again = toPoint('lw/A/d/telemetry', JSON.stringify({ ts: T, seq: 1, values: { v: 1 } }));
    const b = toPoint('lw/A/d/telemetry', JSON.stringify({ ts: T, seq: 2, values: { v: 1 } }));
    expect(a.ok && again.ok && a.line === again.line).toBe(true);
    expect(a.ok && b.ok && a.line.split(' ')[2] !== b.line.split(' ')[2]).toBe(true);
    const alertRaised = toPoint('lw/A/alerts', JSON.stringify({ id: 'x', rule: 'r', severity: 'info', state: 'raised', message: 'm', ts: T }));
    const alertCleared = toPoint('lw/A/alerts', JSON.stringify({ id: 'x', rule: 'r', severity: 'info', state: 'cleared', message: 'm', ts: T }));
    expect(alertRaised.ok && alertCleared.ok && alertRaised.line.split(' ').at(-1) !== alertCleared.line.split(' ').at(-1)).toBe(true);
  });

  it('writes an alarm transition with its id, rule, line, device and state as tags, one point per rev', () => {
    const alarm = { id: 'overheat:A/conv-1', rule: 'overheat', severity: 'warning', message: 'hot', device: 'conv-1', state: 'active-acked', transition: 'ack', operator: 'user:ana', comment: 'on it', raisedAt: T - 5, rev: 2, ts: T };
    const point = toPoint('lw/A/alarms/overheat:A.conv-1', JSON.stringify(alarm));
    expect(point).toMatchObject({ ok: true, measurement: 'alarms', device: 'conv-1' });
    expect(point.ok && point.line.slice(0, point.line.lastIndexOf(' '))).toBe(
      `alarms,alarm=overheat:A/conv-1,device=conv-1,line=A,rule=overheat,severity=warning,state=active-acked transition="ack",operator="user:ana",comment="on it",message="hot",active=1i,raisedAt=${T - 5}i,rev=2i`,
    );
    const next = toPoint('lw/A/alarms/overheat:A.conv-1', JSON.stringify({ ...alarm, rev: 3 }));
    expect(point.ok && next.ok && point.line.split(' ').at(-1) !== next.line.split(' ').at(-1)).toBe(true);
    expect(toPoint('lw/A/alarms/overheat:A.conv-1', '')).toMatchObject({ ok: false, reason: 'not-stored' });
    expect(toPoint('lw/A/alarms/overheat:A.conv-1/set', JSON.stringify({ action: 'clear', operator: 'user:ana', ts: T }))).toMatchObject({ ok: false, reason: 'not-stored' });
  });

  it('stores a shadow rule set’s commands, outcomes, alerts and alarms (lw/_shadow/…) in their shadow measurements, as the live ones otherwise', () => {
    const command = JSON.stringify({ id: 's1-1', action: 'set_speed', params: { speed: 20 }, origin: 'rule:hot', ts: T, expiresAt: T + 10_000 });
    const live = toPoint('lw/A/line-ctl/cmd', command);
    const shadow = toPoint('lw/_shadow/A/line-ctl/cmd', command);
    expect(shadow).toMatchObject({ ok: true, measurement: 'shadow_commands', lineId: 'A', device: 'line-ctl' });
    expect(live.ok && shadow.ok && shadow.line).toBe(live.ok && `shadow_${live.line}`);
    const outcome = { id: 's1-1', action: 'set_speed', params: { speed: 20 }, origin: 'rule:hot', target: 'line-ctl', outcome: 'shadow', attempts: 1, issuedAt: T, ts: T };
    expect(toPoint('lw/_shadow/A/line-ctl/cmd/outcome', JSON.stringify(outcome))).toMatchObject({ ok: true, measurement: 'shadow_commands', device: 'line-ctl' });
    expect(toPoint('lw/_shadow/A/alerts', JSON.stringify({ id: 'hot:A/conv-1', rule: 'hot', severity: 'info', state: 'raised', message: 'm', ts: T }))).toMatchObject({ ok: true, measurement: 'shadow_alerts' });
    const alarm = { id: 'hot:A/conv-1', rule: 'hot', severity: 'warning', message: 'hot', device: 'conv-1', state: 'active-unacked', transition: 'raise', raisedAt: T, rev: 1, ts: T };
    expect(toPoint('lw/_shadow/A/alarms/hot:A.conv-1', JSON.stringify(alarm))).toMatchObject({ ok: true, measurement: 'shadow_alarms', device: 'conv-1' });
    // Not stored: an emptied shadow alarm topic, a shadow dead letter (the live engine reports the same message); refused: device events under the shadow root.
    expect(toPoint('lw/_shadow/A/alarms/hot:A.conv-1', '')).toMatchObject({ ok: false, reason: 'not-stored' });
    expect(toPoint('lw/_shadow/_dead/rules', JSON.stringify({ ts: T, clientId: 'rules', topic: 'lw/A/conv-1/telemetry', reason: 'future_ts: x', payload: '' }))).toMatchObject({ ok: false, reason: 'not-stored' });
    expect(toPoint('lw/_shadow/A/conv-1/telemetry', JSON.stringify({ ts: T, seq: 1, values: { v: 1 } }))).toMatchObject({ ok: false, reason: 'topic', error: expect.stringContaining('not telemetry') as string });
    expect(toPoint('lw/_shadow/A/line-ctl/cmd', '{"id":1}')).toMatchObject({ ok: false, reason: 'schema' });
  });

  it('escapes string fields by the line protocol rules', () => {
    const p = toPoint('lw/A/st-1/state', JSON.stringify({ ts: T, seq: 3, state: 'FAULT', reason: 'say "hi" \\ bye', station: 'bay-1' }));
    expect(p.ok && p.line).toBe(`state,device=st-1,line=A,station=bay-1 state="FAULT",code=4i,reason="say \\"hi\\" \\\\ bye",seq=3i ${T}000003`);
  });

  it('stores readings named like a tag, the seq field or InfluxDB\'s time as <name>_value', () => {
    const p = toPoint('lw/A/d/telemetry', JSON.stringify({ ts: T, seq: 1, values: { device: 1, line: 2, station: 3, type: 4, seq: 5, time: 6, Time: 7, temperature: 20 } }));
    expect(p.ok && p.line).toBe(`telemetry,device=d,line=A device_value=1,line_value=2,station_value=3,type_value=4,seq_value=5,time_value=6,Time=7,temperature=20,seq=1i ${T}000001`);
  });

  it('refuses what is not a linewatch topic or fails its schema, saying which field', () => {
    expect(toPoint('other/topic', '{}')).toMatchObject({ ok: false, reason: 'topic' });
    const bad = toPoint('lw/A/d/telemetry', JSON.stringify({ ts: T, seq: 1, values: { v: 'x' } }));
    expect(bad).toMatchObject({ ok: false, reason: 'schema' });
    expect(!bad.ok && bad.error).toContain('telemetry.values.v');
    expect(toPoint('lw/A/summary', JSON.stringify({ ts: T }))).toMatchObject({ ok: false, reason: 'schema' });
  });

  it('stores dead letters from the broker', () => {
    const p = toPoint('lw/_dead/gw-1', JSON.stringify({ ts: T, clientId: 'gw-1', topic: 'lw/A/x/telemetry', reason: 'bad', payload: 'e30=' }));
    expect(p.ok && p.line).toMatch(/^dead_letters,client=gw-1 topic="lw\/A\/x\/telemetry",reason="bad",payload="e30=" 1700000000123\d{6}$/);
  });
});

describe('PointBuilder', () => {
  it('escapes tag keys and values and field keys, and replaces what cannot be written', () => {
    const line = new PointBuilder('telemetry').tag('device', 'x\nstate').tag('station', 'bay 1,east=2\\').float('a b', 1).at(T, 0);
    expect(line).toBe(`telemetry,device=x\uFFFDstate,station=bay\\ 1\\,east\\=2\uFFFD a\\ b=1 ${T}000000`);
  });

  it('leaves out absent tags and fields', () => {
    const line = new PointBuilder('line').tag('line', 'A').tag('device', undefined).float('oee', undefined).int('goodCount', 7).at(T, 0);
    expect(line).toBe(`line,line=A goodCount=7i ${T}000000`);
  });
});
