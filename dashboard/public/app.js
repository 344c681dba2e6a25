// The live half of the dashboard: one EventSource (`snapshot`, then coalesced `update` deltas)
// keeps a local copy of the line view and re-renders the parts that changed.
/* global fetch, EventSource, setTimeout, URLSearchParams */
import { api, withToken } from './api.js';
import { showDevice } from './device-detail.js';
import { startHistory } from './history.js';

const devices = new Map(); // LINE/DEVICE → device view
const lines = new Map(); // line → summary
const commands = new Map(); // LINE/DEVICE/ID → command view
const alerts = new Map(); // LINE/ID → alarm view (the rules engine's alarm state)
let transitions = []; // recent alarm transitions, newest first

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function kindOf(d) {
  if (d.type) return d.type;
  if (/^st/i.test(d.device)) return 'station';
  if (/^conv/i.test(d.device)) return 'conveyor';
  return 'other';
}

const fmt = (v, digits = 1) => (typeof v === 'number' ? v.toFixed(digits) : '–');
const time = (ts) => new Date(ts).toLocaleTimeString();

function currentLine() {
  const wanted = new URLSearchParams(window.location.search).get('line');
  if (wanted) return wanted;
  const names = [...new Set([...lines.keys(), ...[...devices.values()].map((d) => d.line)])].sort();
  return names[0] ?? null;
}

function renderFigures() {
  const line = currentLine();
  $('line-name').textContent = line ?? '';
  const s = (line && lines.get(line)) || {};
  const controller = [...devices.values()].find((d) => d.line === line && kindOf(d) === 'line-controller');
  const speed = s.speed ?? controller?.values.speed ?? controller?.values.speedSetpoint;
  $('line-speed').textContent = speed === undefined ? '–' : `${fmt(speed)} m/min`;
  $('line-strategy').textContent = s.strategy ?? '–';
  $('line-oee').textContent = typeof s.oee === 'number' ? `${(s.oee * 100).toFixed(1)} %` : '–';
  const online = [...devices.values()].filter((d) => d.online).length;
  $('devices-online').textContent = `${online} / ${devices.size}`;
}

// The few readings worth a glance per kind of device, with short labels and units.
const GLANCE = {
  station: ['goodCount', 'scrapCount', 'cycleTime'],
  conveyor: ['speed', 'motorTemp', 'load'],
  'line-controller': ['speedSetpoint', 'goodCount', 'scrapCount'],
  sensor: ['temperature', 'humidity'],
};
const LABELS = { goodCount: 'good', scrapCount: 'scrap', cycleTime: 'cycle', motorTemp: 'motor', speedSetpoint: 'setpoint' };
const UNITS = { speed: ' m/min', speedSetpoint: ' m/min', motorTemp: ' °C', temperature: ' °C', humidity: ' %', cycleTime: ' s' };

function readings(d) {
  const wanted = GLANCE[kindOf(d)] ?? Object.keys(d.values).slice(0, 3);
  return wanted
    .filter((k) => typeof d.values[k] === 'number')
    .map((k) => {
      const v = d.values[k];
      return `${LABELS[k] ?? k} ${Number.isInteger(v) ? v : fmt(v)}${UNITS[k] ?? ''}`;
    })
    .join(' · ');
}

function tile(d) {
  const state = d.state ?? 'unknown';
  const node = el(
    'div',
    { class: `tile${d.online === false ? ' offline' : ''}`, 'data-device': d.device, 'data-state': state, title: d.reason ?? 'click for its data quality and recent states', role: 'button', tabindex: '0', onclick: () => showDevice(d.line, d.device) },
    el('div', { class: 'name' }, d.device),
    el('div', { class: 'state' }, d.state ? d.state.toLowerCase() + (d.reason ? ` — ${d.reason}` : '') : 'no state yet'),
    el('div', { class: 'readings' }, readings(d)),
  );
  node.style.background = `var(--${d.state ?? 'unknown'})`;
  return node;
}

function renderDevices() {
  const line = currentLine();
  const groups = { station: [], conveyor: [], others: [] };
  for (const d of [...devices.values()].sort((a, b) => a.device.localeCompare(b.device, undefined, { numeric: true }))) {
    if (d.line !== line) continue;
    const k = kindOf(d);
    (k === 'station' ? groups.station : k === 'conveyor' ? groups.conveyor : groups.others).push(tile(d));
  }
  $('stations').replaceChildren(...groups.station);
  $('conveyors').replaceChildren(...groups.conveyor);
  $('others').replaceChildren(...groups.others);
}

/** How long the Shelve button shelves an alarm (the engine unshelves it when the time is up). */
const SHELVE_MINUTES = 30;

const STATE_LABELS = { 'active-unacked': 'active, unacknowledged', 'active-acked': 'active, acknowledged', 'rtn-unacked': 'returned, unacknowledged', normal: 'normal' };

async function alertAction(alert, action, button, extra = {}) {
  button.disabled = true;
  try {
    await api(`/api/alerts/${action}`, { method: 'POST', body: JSON.stringify({ id: alert.id, line: alert.line, ...extra }) });
  } catch (err) {
    button.disabled = false;
    window.alert(`Could not ${action} the alert: ${err.message}`);
  }
}

function actionButton(label, cls, onClick, disabled = false) {
  const button = el('button', { type: 'button', class: cls }, label);
  button.addEventListener('click', () => onClick(button));
  if (disabled) button.disabled = true;
  return button;
}

function renderAlerts() {
  const all = [...alerts.values()].sort((a, b) => b.ts - a.ts);
  const list = all.filter((a) => a.shelvedUntil === undefined);
  const shelved = all.length - list.length;
  $('alert-count').textContent = list.length ? `(${list.length})` : '';
  $('shelved-count').textContent = shelved ? `${shelved} shelved` : '';
  if (list.length === 0) {
    $('alerts').replaceChildren(el('li', { class: 'empty' }, 'no active alerts'));
    return;
  }
  $('alerts').replaceChildren(
    ...list.map((a) => {
      const acked = a.state === 'active-acked';
      const who = a.operator ? ` · ${a.transition} by ${a.operator.replace(/^user:/, '')}${a.comment ? `: ${a.comment}` : ''}` : '';
      return el(
        'li',
        { class: `${a.severity} ${a.state}`, 'data-alert': a.id, 'data-state': a.state },
        el('div', { class: 'text' }, a.message || a.rule, el('div', { class: 'meta' }, `${a.severity} · ${a.rule}${a.device ? ` · ${a.device}` : ''} · ${time(a.raisedAt)} · ${STATE_LABELS[a.state] ?? a.state}${who}`)),
        actionButton('Acknowledge', 'ack-button', (b) => alertAction(a, 'acknowledge', b), acked),
        actionButton('Shelve', 'shelve-button', (b) => alertAction(a, 'shelve', b, { minutes: SHELVE_MINUTES })),
        actionButton('Clear', 'clear-button', (b) => alertAction(a, 'clear', b)),
      );
    }),
  );
}

function renderTransitions() {
  if (transitions.length === 0) return;
  $('transitions').replaceChildren(
    ...transitions.slice(0, 20).map((t) =>
      el(
        'li',
        { class: `${t.severity} ${t.state}`, 'data-transition': `${t.id}#${t.rev}` },
        el('div', { class: 'text' }, `${time(t.ts)} ${t.transition} · ${t.rule}${t.device ? ` · ${t.device}` : ''}`, el('div', { class: 'meta' }, `${STATE_LABELS[t.state] ?? t.state}${t.operator ? ` · ${t.operator.replace(/^user:/, '')}` : ''}${t.comment ? `: ${t.comment}` : ''}`)),
      ),
    ),
  );
}

function describe(c) {
  const params = Object.entries(c.params ?? {}).map(([k, v]) => `${k}=${v}`).join(' ');
  return `${c.action}${params ? ` ${params}` : ''}`;
}

function renderCommands() {
  const list = [...commands.values()].sort((a, b) => b.ts - a.ts).slice(0, 50);
  if (list.length === 0) return;
  $('commands').replaceChildren(
    ...list.map((c) => {
      const status = c.outcome && c.outcome !== 'accepted' && c.outcome !== 'done' ? c.outcome : c.ack ?? c.outcome ?? 'waiting';
      return el(
        'tr',
        { 'data-command': c.id },
        el('td', {}, time(c.ts)),
        el('td', {}, c.device),
        el('td', {}, describe(c)),
        el('td', {}, c.origin),
        el('td', {}, el('span', { class: `ack ${status}`, title: c.ackReason ?? c.outcomeReason ?? '' }, status)),
      );
    }),
  );
}

function apply(delta, full) {
  if (full) {
    devices.clear();
    lines.clear();
    commands.clear();
    alerts.clear();
    transitions = [];
  }
  for (const d of delta.devices) devices.set(d.key, d);
  for (const l of delta.lines) lines.set(l.line, l);
  for (const c of delta.commands) commands.set(`${c.line}/${c.device}/${c.id}`, c);
  for (const a of delta.alerts) alerts.set(`${a.line}/${a.id}`, a);
  for (const key of delta.alertsRemoved ?? []) alerts.delete(key);
  transitions = [...(delta.transitions ?? []), ...transitions].slice(0, 50);
  // Keep the commands map bounded like the server's.
  if (commands.size > 200) for (const key of [...commands.keys()].slice(0, commands.size - 200)) commands.delete(key);
  renderFigures();
  if (full || delta.devices.length) renderDevices();
  if (full || delta.alerts.length || delta.alertsRemoved?.length) renderAlerts();
  if (full || delta.transitions?.length) renderTransitions();
  if (full || delta.commands.length) renderCommands();
}

let historyStarted = false;

function connect() {
  const source = new EventSource(withToken('/events'));
  source.addEventListener('snapshot', (e) => {
    $('connection').className = 'connection online';
    $('connection').textContent = 'live';
    apply(JSON.parse(e.data), true);
    // Charts start once we know the line and its clock (see history.js).
    if (!historyStarted) {
      historyStarted = true;
      startHistory(
        () => currentLine(),
        () => Math.max(0, ...[...devices.values()].map((d) => d.lastSeen)),
      );
    }
  });
  source.addEventListener('update', (e) => apply(JSON.parse(e.data), false));
  source.addEventListener('error', () => {
    $('connection').className = 'connection offline';
    $('connection').textContent = 'reconnecting…';
    // EventSource retries by itself; a refused token (401) closes it for good, so say why.
    if (source.readyState === EventSource.CLOSED) {
      $('connection').textContent = 'offline';
      fetch(withToken('/api/state')).then((r) => {
        if (r.status === 401) $('connection').textContent = 'token needed: open the URL printed at start';
        else setTimeout(connect, 2000);
      }, () => setTimeout(connect, 2000));
    }
  });
}

// The shadow panel: shown only while a shadow rule set is heard from (GET /api/shadow, every 5 s).
async function refreshShadow() {
  try {
    const report = await api('/api/shadow');
    $('shadow').hidden = !report.active;
    if (!report.active) return;
    $('shadow-tolerance').textContent = `${report.toleranceMs / 1000} s`;
    $('shadow-count').textContent = report.differences.length ? String(report.differences.length) : '';
    $('shadow-differences').replaceChildren(
      ...(report.differences.length === 0
        ? [el('tr', { class: 'empty' }, el('td', { colspan: '5' }, 'no differences'))]
        : report.differences.map((d) =>
            el(
              'tr',
              { 'data-shadow': d.side },
              el('td', {}, time(d.ts)),
              el('td', {}, d.device),
              el('td', {}, describe(d)),
              el('td', {}, d.origin),
              el('td', {}, el('span', { class: `ack ${d.side}` }, d.side === 'shadow-only' ? 'shadow' : 'live')),
            ),
          )),
    );
  } catch {
    // The next refresh tries again; the live view has its own connection state.
  } finally {
    setTimeout(refreshShadow, 5000);
  }
}

connect();
refreshShadow();

