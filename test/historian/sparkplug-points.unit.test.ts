// Raw Sparkplug metrics messages (lw/_sparkplug/…) as sparkplug_metrics points: the field by
// datatype, a value whose JSON type does not fit its datatype left out, a payload refused with
// the field named, and the same message giving the same points (its identity).
import { describe, expect, it } from 'vitest';
import { toPoint } from '../../historian/points.js';

const TS = 1_760_000_000_000;
const message = (metrics: unknown[], extra: Record<string, unknown> = {}): string => JSON.stringify({ message: 'DDATA', ts: TS, seq: 7, online: true, metrics, ...extra });

describe('sparkplug_metrics points', () => {
  it('puts each value in the field of its datatype, one line per metric, timed with the seq × 1000 in the nanosecond digits', () => {
    const point = toPoint('lw/_sparkplug/G1/edge-1/oven-1/metrics', message([
      { name: 'count', alias: 3, type: 'Int32', value: 8, ts: TS, stale: false },
      { name: 'Motor/Load', type: 'Float', value: 0.5, ts: TS + 1, stale: false },
      { name: 'running', type: 'Boolean', value: false, ts: TS, stale: false },
      { name: 'recipe', type: 'String', value: 'rye "x"', ts: TS, stale: false },
    ]));
    expect(point.ok && point.measurement).toBe('sparkplug_metrics');
    const lines = point.ok ? point.line.split('\n') : [];
    expect(lines).toEqual([
      `sparkplug_metrics,datatype=Int32,device=oven-1,edge=edge-1,group=G1,metric=count value_int=8i,stale=0i,online=1i,alias=3i,seq=7i,message="DDATA" ${TS}007000`,
      `sparkplug_metrics,datatype=Float,device=oven-1,edge=edge-1,group=G1,metric=Motor/Load value_float=0.5,stale=0i,online=1i,seq=7i,message="DDATA" ${TS + 1}007000`,
      `sparkplug_metrics,datatype=Boolean,device=oven-1,edge=edge-1,group=G1,metric=running value_bool=false,stale=0i,online=1i,seq=7i,message="DDATA" ${TS}007000`,
      `sparkplug_metrics,datatype=String,device=oven-1,edge=edge-1,group=G1,metric=recipe value_str="rye \\"x\\"",stale=0i,online=1i,seq=7i,message="DDATA" ${TS}007000`,
    ]);
    expect(toPoint('lw/_sparkplug/G1/edge-1/oven-1/metrics', message([{ name: 'count', alias: 3, type: 'Int32', value: 8, ts: TS, stale: false }]))).toMatchObject({ ok: true, line: lines[0] });
  });

  it('keeps buffered values of one metric in one message apart (same ts: the occurrence in the nanosecond digits), the same on a replay', () => {
    const buffered = message([
      { name: 'temp', type: 'Double', value: 20.5, ts: TS, stale: false },
      { name: 'temp', type: 'Double', value: 20.7, ts: TS, stale: false },
      { name: 'rpm', type: 'Int32', value: 900, ts: TS, stale: false },
    ]);
    const point = toPoint('lw/_sparkplug/G1/edge-1/oven-1/metrics', buffered);
    const times = point.ok ? point.line.split('\n').map((line) => line.slice(line.lastIndexOf(' ') + 1)) : [];
    expect(times).toEqual([`${TS}007000`, `${TS}007001`, `${TS}007000`]);
    expect(toPoint('lw/_sparkplug/G1/edge-1/oven-1/metrics', buffered)).toEqual(point);
  });

  it('leaves out a value whose JSON type does not fit its datatype, and the value of a datatype without a field; a node metric has no device tag; an NDEATH has no seq', () => {
    const point = toPoint('lw/_sparkplug/G1/edge-1/metrics', message([
      { name: 'count', type: 'Int32', value: 'eight', ts: TS, stale: false },
      { name: 'ratio', type: 'Int64', value: 0.5, ts: TS, stale: false },
      { name: 'table', type: 'DataSet', value: null, ts: TS, stale: true },
    ], { message: 'NDEATH', seq: undefined, online: false }));
    expect(point.ok ? point.line.split('\n') : point).toEqual([
      `sparkplug_metrics,datatype=Int32,edge=edge-1,group=G1,metric=count stale=0i,online=0i,message="NDEATH" ${TS}256000`,
      `sparkplug_metrics,datatype=Int64,edge=edge-1,group=G1,metric=ratio stale=0i,online=0i,message="NDEATH" ${TS}256000`,
      `sparkplug_metrics,datatype=DataSet,edge=edge-1,group=G1,metric=table stale=1i,online=0i,message="NDEATH" ${TS}256000`,
    ]);
  });

  it('refuses a payload that is not a raw metrics message, naming the field; a topic with a wrong level count is not one', () => {
    expect(toPoint('lw/_sparkplug/G1/edge-1/metrics', message([{ name: 'x', type: 'Int32', value: 1, ts: -1, stale: false }]))).toMatchObject({ ok: false, reason: 'schema', error: expect.stringContaining('metrics.0.ts') });
    expect(toPoint('lw/_sparkplug/G1/edge-1/metrics', 'not json')).toMatchObject({ ok: false, reason: 'schema', error: expect.stringContaining('not valid JSON') });
    expect(toPoint('lw/_sparkplug/G1/edge-1/metrics', message([]))).toMatchObject({ ok: false, reason: 'not-stored' });
    expect(toPoint('lw/_sparkplug/G1/metrics', message([{ name: 'x', type: 'Int32', value: 1, ts: TS, stale: false }]))).toMatchObject({ ok: false, reason: 'topic' });
  });
});
