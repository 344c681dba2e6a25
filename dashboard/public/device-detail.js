// The device detail view: click a device's tile and GET /api/device shows its data quality (the
// stored data_quality rows of the last 24 h added up, and the historian's totals since it started),
// its recent states and latest readings; refreshed every 5 s while open.
/* global setTimeout, clearTimeout, URLSearchParams */
import { api } from './api.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 5000;

/** The counts of a data_quality row, with what each means (contracts/period-rows.ts). */
const FIELDS = [
  ['messages', 'messages stored'],
  ['skipped', 'missing seqs (skipped ahead)'],
  ['gaps', 'gaps (times the seq skipped)'],
  ['duplicates', 'duplicates'],
  ['reorders', 'reorders (late, filling a gap)'],
  ['late_ts', 'late timestamps'],
  ['future_ts', 'future timestamps'],
  ['resets', 'counter restarts'],
  ['stale', 'stale (outside the run)'],
];

let shown = null; // { line, device }
let timer;

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function item(text) {
  const li = document.createElement('li');
  li.textContent = text;
  return li;
}

const time = (ts) => new Date(ts).toLocaleTimeString();

async function refresh() {
  clearTimeout(timer);
  if (!shown) return;
  const { line, device } = shown;
  try {
    const detail = await api(`/api/device?${new URLSearchParams({ line, device })}`);
    if (!shown || shown.line !== line || shown.device !== device) return;
    const stored = detail.history?.quality;
    $('detail-state').textContent = detail.view?.state ? detail.view.state.toLowerCase() : '';
    $('detail-quality').replaceChildren(
      ...FIELDS.map(([field, label]) => {
        const tr = document.createElement('tr');
        tr.dataset.field = field;
        tr.append(cell(label), cell(stored ? String(stored[field]) : '–', 'stored'), cell(detail.live ? String(detail.live[field]) : '–', 'live'));
        return tr;
      }),
    );
    const states = detail.history?.states ?? [];
    $('detail-states').replaceChildren(...(states.length ? states.map((s) => item(`${time(s.ts)} ${s.state.toLowerCase()}${s.reason ? ` — ${s.reason}` : ''}`)) : [item('no stored states in the last 24 h')]));
    const values = Object.entries(detail.view?.values ?? {});
    $('detail-readings').replaceChildren(...(values.length ? values.map(([name, value]) => item(`${name} ${value}`)) : [item('no readings yet')]));
    $('detail-status').textContent = detail.historyError ?? `stored rows from ${time(detail.history.from)} to ${time(detail.history.to)}; ${detail.history.intervals.length} latest intervals read`;
  } catch (err) {
    $('detail-status').textContent = `could not read the device: ${err.message}`;
  } finally {
    if (shown && shown.line === line && shown.device === device) timer = setTimeout(refresh, REFRESH_MS);
  }
}

/** Opens the detail view of LINE/DEVICE (or refreshes it if open). */
export function showDevice(line, device) {
  shown = { line, device };
  $('detail-name').textContent = `${line}/${device}`;
  $('detail-status').textContent = 'loading…';
  $('detail-quality').replaceChildren();
  $('device-detail').hidden = false;
  void refresh();
}

$('detail-close').addEventListener('click', () => {
  shown = null;
  clearTimeout(timer);
  $('device-detail').hidden = true;
});
