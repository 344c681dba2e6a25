// Newline-delimited JSON: one object per line.
//   device → gateway: {"kind":"telemetry","ts":…,"seq":…,"values":{…}}  (kind: state|telemetry|status|ack)
//   gateway → device: {"kind":"cmd","id":…,"action":…,"params":{…},"origin":…,"ts":…,"expiresAt":…}
import { DEVICE_KINDS, type CommandPayload, type DeviceMessageKind } from '../index.js';
import { looksBinary, type Decoded, type DeviceFrame, type LineCodec } from './types.js';

function parseObject(line: string): Decoded<Record<string, unknown>> {
  if (looksBinary(line)) return { ok: false, reason: 'garbage', detail: 'binary bytes in a text line' };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { ok: false, reason: 'garbage', detail: `not JSON (${(err as Error).message})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'garbage', detail: 'not a JSON object' };
  return { ok: true, value: value as Record<string, unknown> };
}

export const ndjsonCodec: LineCodec = {
  name: 'ndjson',
  encodeEvent(kind: DeviceMessageKind, payload: Record<string, unknown>): string {
    return `${JSON.stringify({ kind, ...payload })}\n`;
  },
  decodeEvent(line: string): Decoded<DeviceFrame> {
    const parsed = parseObject(line);
    if (!parsed.ok) return parsed;
    const { kind, ...body } = parsed.value;
    if (typeof kind !== 'string' || !(DEVICE_KINDS as readonly string[]).includes(kind)) {
      return { ok: false, reason: 'unknown_sentence', detail: `kind must be one of ${DEVICE_KINDS.join(', ')} (got ${JSON.stringify(kind)})` };
    }
    return { ok: true, value: { kind: kind as DeviceMessageKind, body } };
  },
  encodeCommand(cmd: CommandPayload): string {
    return `${JSON.stringify({ kind: 'cmd', ...cmd })}\n`;
  },
  decodeCommand(line: string): Decoded<CommandPayload> {
    const parsed = parseObject(line);
    if (!parsed.ok) return parsed;
    const { kind, ...cmd } = parsed.value;
    if (kind !== 'cmd') return { ok: false, reason: 'unknown_sentence', detail: `expected kind "cmd" (got ${JSON.stringify(kind)})` };
    return { ok: true, value: cmd as unknown as CommandPayload };
  },
};
