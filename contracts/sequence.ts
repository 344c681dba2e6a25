// Per-device sequence tracking: recognises duplicates and counts gaps and reorders.
// A device restarting from seq 0 (or any big jump backwards) is treated as a reset, not a reorder.

export type SequenceVerdict = 'first' | 'next' | 'gap' | 'duplicate' | 'reorder' | 'reset';

export interface SequenceCounters {
  duplicates: number;
  gaps: number;
  missing: number;
  reorders: number;
  resets: number;
}

interface DeviceWindow {
  highest: number;
  /** Bitmap of the last WINDOW seqs below `highest` that were seen (bit i = highest - 1 - i). */
  seen: bigint;
}

const WINDOW = 64;

export class SequenceTracker {
  readonly counters: SequenceCounters = { duplicates: 0, gaps: 0, missing: 0, reorders: 0, resets: 0 };
  private readonly devices = new Map<string, DeviceWindow>();

  /** Records `seq` for `device` and says how it relates to what came before. */
  check(device: string, seq: number): SequenceVerdict {
    const w = this.devices.get(device);
    if (!w) {
      this.devices.set(device, { highest: seq, seen: 0n });
      return 'first';
    }
    if (seq === w.highest) {
      this.counters.duplicates++;
      return 'duplicate';
    }
    if (seq > w.highest) {
      const jump = seq - w.highest;
      w.seen = jump >= WINDOW ? 0n : ((w.seen << BigInt(jump)) | (1n << BigInt(jump - 1))) & ((1n << BigInt(WINDOW)) - 1n);
      w.highest = seq;
      if (jump === 1) return 'next';
      this.counters.gaps++;
      this.counters.missing += jump - 1;
      return 'gap';
    }
    const behind = w.highest - seq;
    if (behind > WINDOW) {
      // Far behind: the device restarted its counter.
      this.counters.resets++;
      this.devices.set(device, { highest: seq, seen: 0n });
      return 'reset';
    }
    const bit = 1n << BigInt(behind - 1);
    if (w.seen & bit) {
      this.counters.duplicates++;
      return 'duplicate';
    }
    w.seen |= bit;
    this.counters.reorders++;
    // It was counted missing when the gap opened; it arrived after all.
    if (this.counters.missing > 0) this.counters.missing--;
    return 'reorder';
  }

  forget(device: string): void {
    this.devices.delete(device);
  }
}
