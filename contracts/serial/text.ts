// A compact NMEA-style text protocol for small devices: `$TYPE,field,…*HH\n`, where HH is the
// XOR of every byte between `$` and `*` as two hex digits. Sentences (docs/gateway.md):
//   $ST,<STATE>[,<reason>]                         device state          → state
//   $TM,<name>=<number>[,<name>=<number>…]         readings              → telemetry
//   $AK,<command id>,<result>[,<reason>]           command answer        → ack
//   $OL,<online|offline>                           device status         → status
//   $CM,<id>,<action>,<expiresAt>[,<key>=<value>…] gateway → device: a command
// Devices have no clock here: the gateway stamps `ts` and `seq`. Fields never contain `,` `*` `$`
// or line breaks (the encoder replaces them).
import { ACK_RESULTS, COMMAND_ACTIONS, DEVICE_STATES, type CommandPayload, type DeviceMessageKind } from '../index.js';
import { looksBinary, type Decoded, type DeviceFrame, type LineCodec } from './types.js';

/** XOR of the sentence body's UTF-8 bytes, as two upper-case hex digits. */
export function xorChecksum(body: string): string {
  let cs = 0;
  // eslint-disable-next-line no-control-regex
  if (/^[\u0000-\u007f]*$/.test(body)) {
    for (let i = 0; i < body.length; i++) cs ^= body.charCodeAt(i);
  } else {
    for (const byte of Buffer.from(body, 'utf8')) cs ^= byte;
  }
  return cs.toString(16).toUpperCase().padStart(2, '0');
}

function clean(field: string): string {
  return field.replace(/[,*$\r\n]/g, ';');
}

export function sentence(fields: string[]): string {
  const body = fields.map(clean).join(',');
  return `$${body}*${xorChecksum(body)}\n`;
}

/** Checks framing and checksum; returns the fields. */
export function parseSentence(line: string): Decoded<string[]> {
  if (looksBinary(line)) return { ok: false, reason: 'garbage', detail: 'binary bytes in a text line' };
  const dollar = line.indexOf('$');
  if (dollar !== 0) return { ok: false, reason: 'garbage', detail: dollar < 0 ? 'no `$` sentence start' : `${dollar} stray bytes before \`$\`` };
  const star = line.lastIndexOf('*');
  if (star < 0 || star !== line.length - 3) return { ok: false, reason: 'garbage', detail: 'no `*HH` checksum at the end' };
  const body = line.slice(1, star);
  const given = line.slice(star + 1).toUpperCase();
  const expected = xorChecksum(body);
  if (given !== expected) return { ok: false, reason: 'checksum', detail: `checksum ${given}, expected ${expected}` };
  return { ok: true, value: body.split(',') };
}

function parseValue(v: string): number | string | boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (v !== '' && Number.isFinite(Number(v))) return Number(v);
  return v;
}

function pairs(fields: string[], numeric: boolean): Decoded<Record<string, number | string | boolean>> {
  const out: Record<string, number | string | boolean> = {};
  for (const f of fields) {
    const eq = f.indexOf('=');
    if (eq <= 0) return { ok: false, reason: 'bad_field', detail: `field "${f}" is not name=value` };
    const value = parseValue(f.slice(eq + 1));
    if (numeric && typeof value !== 'number') return { ok: false, reason: 'bad_field', detail: `field "${f}" is not a number` };
    out[f.slice(0, eq)] = value;
  }
  return { ok: true, value: out };
}

const bad = (detail: string): Decoded<never> => ({ ok: false, reason: 'bad_field', detail });

export const textCodec: LineCodec = {
  name: 'text',
  encodeEvent(kind: DeviceMessageKind, payload: Record<string, unknown>): string {
    switch (kind) {
      case 'state':
        return sentence(['ST', String(payload.state), ...(payload.reason !== undefined ? [String(payload.reason)] : [])]);
      case 'telemetry':
        return sentence(['TM', ...Object.entries(payload.values as Record<string, number>).map(([k, v]) => `${k}=${v}`)]);
      case 'ack':
        return sentence(['AK', String(payload.id), String(payload.result), ...(payload.reason !== undefined ? [String(payload.reason)] : [])]);
      case 'status':
        return sentence(['OL', String(payload.status)]);
    }
  },
  decodeEvent(line: string): Decoded<DeviceFrame> {
    const parsed = parseSentence(line);
    if (!parsed.ok) return parsed;
    const [type, ...f] = parsed.value;
    switch (type) {
      case 'ST': {
        if (!(DEVICE_STATES as readonly string[]).includes(f[0] ?? '')) return bad(`unknown state "${f[0] ?? ''}"`);
        return { ok: true, value: { kind: 'state', body: { state: f[0], ...(f[1] ? { reason: f.slice(1).join(',') } : {}) } } };
      }
      case 'TM': {
        const values = pairs(f, true);
        if (!values.ok) return values;
        return { ok: true, value: { kind: 'telemetry', body: { values: values.value } } };
      }
      case 'AK': {
        if (!f[0]) return bad('ack without a command id');
        if (!(ACK_RESULTS as readonly string[]).includes(f[1] ?? '')) return bad(`unknown ack result "${f[1] ?? ''}"`);
        return { ok: true, value: { kind: 'ack', body: { id: f[0], result: f[1], ...(f[2] ? { reason: f.slice(2).join(',') } : {}) } } };
      }
      case 'OL':
        if (f[0] !== 'online' && f[0] !== 'offline') return bad(`unknown status "${f[0] ?? ''}"`);
        return { ok: true, value: { kind: 'status', body: { status: f[0] } } };
      default:
        return { ok: false, reason: 'unknown_sentence', detail: `unknown sentence type "${type ?? ''}"` };
    }
  },
  encodeCommand(cmd: CommandPayload): string {
    return sentence(['CM', cmd.id, cmd.action, String(cmd.expiresAt), ...Object.entries(cmd.params).map(([k, v]) => `${k}=${v}`)]);
  },
  decodeCommand(line: string): Decoded<CommandPayload> {
    const parsed = parseSentence(line);
    if (!parsed.ok) return parsed;
    const [type, id, action, expiresAt, ...rest] = parsed.value;
    if (type !== 'CM') return { ok: false, reason: 'unknown_sentence', detail: `expected a CM sentence (got "${type ?? ''}")` };
    if (!id) return bad('command without an id');
    if (!(COMMAND_ACTIONS as readonly string[]).includes(action ?? '')) return bad(`unknown action "${action ?? ''}"`);
    const expires = Number(expiresAt);
    if (!Number.isInteger(expires)) return bad(`expiresAt "${expiresAt ?? ''}" is not a time in ms`);
    const params = pairs(rest, false);
    if (!params.ok) return params;
    // A CM sentence carries no send time or origin: the device learns only what it must act on.
    return { ok: true, value: { id, action: action as CommandPayload['action'], params: params.value, origin: 'gateway', ts: 0, expiresAt: expires } };
  },
};
