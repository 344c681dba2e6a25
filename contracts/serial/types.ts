// What a line codec turns frames into and back. Device → gateway frames carry one device message
// (state, telemetry, status or ack); `ts` and `seq` may be left out by devices without a clock,
// in which case the gateway stamps them. Gateway → device frames carry one command.
import type { CommandPayload, DeviceMessageKind } from '../index.js';

export type DecodeDropReason = 'garbage' | 'checksum' | 'unknown_sentence' | 'bad_field';

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: DecodeDropReason; detail: string };

export interface DeviceFrame {
  kind: DeviceMessageKind;
  /** The payload as the device sent it; validated against contracts/ by the gateway. */
  body: Record<string, unknown>;
}

export interface LineCodec {
  readonly name: 'ndjson' | 'text';
  /** Device side: one message as a frame, newline included. */
  encodeEvent(kind: DeviceMessageKind, payload: Record<string, unknown>): string;
  /** Gateway side: one line (without its newline) into a device message. */
  decodeEvent(line: string): Decoded<DeviceFrame>;
  /** Gateway side: a command as a frame, newline included. */
  encodeCommand(cmd: CommandPayload): string;
  /** Device side: one line into a command. */
  decodeCommand(line: string): Decoded<CommandPayload>;
}

/** True when a line has bytes no text frame contains (control characters other than tab, invalid UTF-8). */
export function looksBinary(line: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u0008\u000b-\u001f\u007f\ufffd]/.test(line);
}
