// The history half: charts from /api/history (InfluxDB) drawn with uPlot, and a state timeline
// drawn as coloured segments. The time-range picker redraws everything; a relative range
// ("last hour") refreshes itself every 30 s.
/* global setInterval, clearInterval, getComputedStyle, URLSearchParams */
import uPlot from '/vendor/uPlot.esm.js';
import { api } from './api.js';

// What each chart shows: the historian's measurements and fields (docs/historian.md).
// Conveyor speeds and motor temperatures; throughput is the rise of the line controller's good-parts
// counter per minute; OEE by hour is each hour's own figure (measurement oee, docs/oee.md).
export const CHARTS = [
  { id: 'chart-speed', measurement: 'telemetry', field: 'speed', type: 'conveyor', agg: 'mean', by: 'device', unit: 'm/min' },
  { id: 'chart-temperature', measurement: 'telemetry', field: 'motorTemp', type: 'conveyor', agg: 'mean', by: 'device', unit: '°C' },
  { id: 'chart-throughput', measurement: 'telemetry', field: 'goodCount', type: 'line-controller', agg: 'spread', by: 'none', every: '1m', perMinute: true, unit: '/min' },
  { id: 'chart-oee', measurement: 'oee', field: 'oee', agg: 'last', by: 'none', every: '1h', period: 'hour', scope: 'line', bars: true, unit: '' },
];
const TIMELINE = { measurement: 'state', field: 'state', type: 'station', agg: 'none', by: 'device' };

const PALETTE = ['#2f6fdb', '#d64545', '#2e9d5b', '#e0a100', '#8e44ad', '#16a2b8', '#d9822b', '#4b5563'];
const STATES = ['RUNNING', 'IDLE', 'BLOCKED', 'STARVED', 'FAULT', 'MAINTENANCE', 'STOPPED'];
const plots = new Map();
const $ = (id) => document.getElementById(id);

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 };
let lineClock = () => Date.now();

/**
 * A relative range ends at the line's clock: the newest device timestamp heard, or now if that
 * is earlier. A simulation sped up (`--speedup`) stamps its events ahead of the wall clock, and
 * "the last hour" should still show them.
 */
function range() {
  const choice = $('range').value;
  if (choice !== 'custom') {
    const [, n, unit] = /^-(\d+)([mhd])$/.exec(choice);
    const to = Math.max(Date.now(), lineClock());
    return { from: String(to - Number(n) * UNIT_MS[unit]), to: String(to), relative: true };
  }
  const from = $('range-from').value;
  const to = $('range-to').value;
  if (!from || !to) return undefined;
  return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), relative: false };
}

function query(spec, r, line) {
  const q = new URLSearchParams({ measurement: spec.measurement, field: spec.field, agg: spec.agg, by: spec.by, from: r.from, to: r.to });
  if (spec.every) q.set('every', spec.every);
  if (spec.type) q.set('type', spec.type);
  if (spec.period) q.set('period', spec.period);
  if (spec.scope) q.set('scope', spec.scope);
  if (line) q.set('line', line);
  return `/api/history?${q}`;
}

/** The downtime Pareto: the line's unplanned stop minutes by cause, largest first, with the cumulative share. */
function drawPareto(result) {
  const host = $('pareto');
  const causes = result.causes.slice(0, 10);
  host.dataset.causes = String(result.causes.length);
  if (causes.length === 0) {
    host.textContent = 'no unplanned stops in this range';
    return;
  }
  const total = result.causes.reduce((sum, c) => sum + c.unplannedMs, 0);
  const top = causes[0].unplannedMs;
  const css = getComputedStyle(document.documentElement);
  let cumulative = 0;
  const rows = causes.map((cause) => {
    cumulative += cause.unplannedMs;
    const row = document.createElement('div');
    row.className = 'pareto-row';
    const label = document.createElement('span');
    label.className = 'who';
    label.textContent = `${cause.state.toLowerCase()}: ${cause.reason}`;
    label.title = label.textContent;
    const bar = document.createElement('span');
    bar.className = 'pareto-bar';
    bar.style.width = `${(cause.unplannedMs / top) * 100}%`;
    bar.style.background = css.getPropertyValue(`--${cause.state}`) || '#999';
    const value = document.createElement('span');
    value.className = 'pareto-value';
    value.textContent = `${(cause.unplannedMs / 60_000).toFixed(1)} min · ${cause.stops}× · ${Math.round((cumulative / total) * 100)} %`;
    const track = document.createElement('span');
    track.className = 'pareto-track';
    track.append(bar);
    row.append(label, track, value);
    return row;
  });
  host.replaceChildren(...rows);
}

/** Turns per-device series into uPlot's aligned columns (seconds on x). */
function align(spec, result) {
  if (result.series.length === 0) return { data: null, names: [] };
  // A counter's rise per bucket → per minute, whatever bucket the server chose for the range.
  const scale = spec.perMinute && result.bucketMs ? 60_000 / result.bucketMs : 1;
  const tables = result.series.map((s) => [s.points.map((p) => p[0] / 1000), s.points.map((p) => (typeof p[1] === 'number' ? p[1] * scale : null))]);
  const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
  return { data, names: result.series.map((s) => s.device ?? result.field) };
}

/**
 * The x range drawn: up to the end of the query, from its start or — when the data begins later
 * (a line that started ten minutes ago, "last 24 h") — from one bucket before the first point.
 */
function xRange(result) {
  const first = Math.min(...result.series.filter((s) => s.points.length).map((s) => s.points[0][0]));
  const start = Number.isFinite(first) ? Math.max(result.from, first - (result.bucketMs ?? 0)) : result.from;
  return [start, result.to];
}

function drawChart(spec, result) {
  const host = $(spec.id);
  const { data, names } = align(spec, result);
  plots.get(spec.id)?.destroy();
  plots.delete(spec.id);
  host.replaceChildren();
  host.dataset.points = String(result.series.reduce((n, s) => n + s.points.length, 0));
  if (!data) {
    host.textContent = 'no data in this range';
    return;
  }
  const width = Math.max(300, host.clientWidth || 440);
  const bars = spec.bars ? uPlot.paths.bars({ size: [0.6, 40] }) : undefined;
  const opts = {
    width,
    height: 200,
    legend: { live: true },
    scales: {
      x: { time: true, range: () => xRange(result).map((t) => t / 1000) },
      ...(spec.bars ? { y: { range: (_u, _min, max) => [0, Math.max(1, max ?? 1)] } } : {}),
    },
    series: [
      {},
      ...names.map((name, i) => ({
        label: name,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.5,
        spanGaps: true,
        ...(bars ? { paths: bars, fill: PALETTE[i % PALETTE.length] + '99', points: { show: false } } : {}),
        value: (_, v) => (v === null || v === undefined ? '–' : `${v.toFixed(spec.unit ? 1 : 2)} ${spec.unit}`),
      })),
    ],
    axes: [{}, { size: 50 }],
  };
  plots.set(spec.id, new uPlot(opts, data, host));
}

function drawTimeline(result, r) {
  const host = $('timeline');
  const [from, to] = xRange(result);
  const span = to - from;
  const css = getComputedStyle(document.documentElement);
  const tracks = result.series
    .filter((s) => s.points.length > 0)
    .sort((a, b) => String(a.device).localeCompare(String(b.device), undefined, { numeric: true }))
    .map((s) => {
      const bar = document.createElement('div');
      bar.className = 'bar';
      s.points.forEach(([t, state], i) => {
        const end = i + 1 < s.points.length ? s.points[i + 1][0] : to;
        const seg = document.createElement('div');
        seg.className = 'seg';
        seg.style.left = `${(Math.max(t, from) - from) / span * 100}%`;
        seg.style.width = `${Math.max(0.2, (end - Math.max(t, from)) / span * 100)}%`;
        seg.style.background = css.getPropertyValue(`--${state}`) || '#999';
        seg.title = `${s.device}: ${state} from ${new Date(t).toLocaleTimeString()}`;
        bar.append(seg);
      });
      const track = document.createElement('div');
      track.className = 'track';
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = s.device ?? '';
      track.append(who, bar);
      return track;
    });
  host.dataset.points = String(result.series.reduce((n, s) => n + s.points.length, 0));
  if (tracks.length === 0) {
    host.textContent = 'no state changes in this range';
    return;
  }
  const legend = document.createElement('div');
  legend.className = 'legend';
  for (const st of STATES) {
    const item = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.style.background = css.getPropertyValue(`--${st}`);
    item.append(swatch, st.toLowerCase());
    legend.append(item);
  }
  host.replaceChildren(...tracks, legend);
  void r;
}

async function refresh(currentLine) {
  const r = range();
  if (!r) return;
  const line = currentLine();
  const status = $('history-status');
  status.textContent = 'loading…';
  const errors = [];
  await Promise.all([
    ...CHARTS.map((spec) =>
      api(query(spec, r, line)).then(
        (result) => drawChart(spec, result),
        (err) => errors.push(`${spec.field}: ${err.message}`),
      ),
    ),
    api(query(TIMELINE, r, line)).then(
      (result) => drawTimeline(result, r),
      (err) => errors.push(`states: ${err.message}`),
    ),
    api(`/api/downtime?${new URLSearchParams({ from: r.from, to: r.to, ...(line ? { line } : {}) })}`).then(
      (result) => drawPareto(result),
      (err) => errors.push(`downtime: ${err.message}`),
    ),
  ]);
  status.textContent = errors.length ? errors[0] : `updated ${new Date().toLocaleTimeString()}`;
}

export function startHistory(currentLine, latestDeviceTs) {
  if (latestDeviceTs) lineClock = latestDeviceTs;
  let timer;
  const schedule = () => {
    clearInterval(timer);
    void refresh(currentLine);
    if (range()?.relative) timer = setInterval(() => void refresh(currentLine), 30_000);
  };
  $('range').addEventListener('change', () => {
    $('custom-range').hidden = $('range').value !== 'custom';
    if ($('range').value !== 'custom') schedule();
  });
  $('range-from').addEventListener('change', schedule);
  $('range-to').addEventListener('change', schedule);
  $('refresh').addEventListener('click', schedule);
  schedule();
}
