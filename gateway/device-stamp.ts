// What the gateway adds to a device's frame before it publishes it: `ts` when the device has no
// clock, the port's device `type` when the frame carries none, and `seq` from the device's
// sequence (sequence-store.ts) — every bridge (ndjson, text, Modbus) stamps the same way.
import type { DeviceMessageKind, DeviceType } from '../contracts/index.js';
import type { DeviceSequence } from './sequence-store.js';

/** The kinds whose payload has a `type` (contracts/schemas.ts). */
const TYPED_KINDS: ReadonlySet<DeviceMessageKind> = new Set<DeviceMessageKind>(['state', 'telemetry', 'status']);

export class DeviceStamp {
  constructor(
    readonly line: string,
    readonly device: string,
    private readonly type: DeviceType | undefined,
    private readonly sequence: DeviceSequence,
  ) {}

  /**
   * Fills in `ts` (the gateway's receive time) when the frame has none, `type` (the port's) when it
   * has none, and `seq` on every kind but a status without one: the frame's own seq if it moves the
   * device's sequence forward, else the next one (sequence-store.ts). Throws if the sequence cannot
   * reserve numbers on disk.
   */
  stamp(kind: DeviceMessageKind, body: Record<string, unknown>): Record<string, unknown> {
    const out = { ...body };
    if (out.ts === undefined) out.ts = Date.now();
    if (out.type === undefined && this.type !== undefined && TYPED_KINDS.has(kind)) out.type = this.type;
    const supplied = typeof out.seq === 'number' && Number.isInteger(out.seq) && out.seq >= 0 ? out.seq : undefined;
    if (out.seq === undefined ? kind !== 'status' : supplied !== undefined) out.seq = this.sequence.take(supplied);
    return out;
  }
}
