// Per-device sequence tracking: recognises duplicates and counts what never arrived.
//
// A device's messages (state, telemetry, ack, and status when it carries one) share one `seq`
// that grows by one per message, and a `ts` from the device's clock. MQTT keeps order only per
// topic and QoS, so across kinds a message may arrive a few places early or late; a reconnect
// redelivers what was not acknowledged; a retained state from the device's previous run arrives
// on (re)subscribe; a device or gateway restart starts again from 0.
//
// So, per device, the tracker keeps the run it follows: the highest seq and its ts, the first
// seq of the run and which of the last WINDOW seqs arrived. A message
// - just ahead (at most WINDOW, not older in time) moves the run on; the seqs it skips count as
//   missing (`missing`, `gaps`);
// - behind, within WINDOW, not newer in time: a `duplicate` if it arrived before, else `reorders`
//   (late), and if it had been counted missing it no longer is;
// - far behind (more than WINDOW) and not newer in time: `stale` (a redelivery or backlog older
//   than the window; whether it is a duplicate cannot be told, so `missing` is left alone);
// - anything else — far ahead, ahead but older in time, behind but newer in time — cannot be told
//   apart from a stray message (another run's retained state, a second counter) until the next
//   message that is not an old one of the run shows which run continues: if that one is closer
//   to it than to the run, the run moves to it (a big gap, counted missing; or a restart,
//   `resets`), else it was `stale`.
// `missing` is therefore exact for loss, reordering within WINDOW, duplicates and restarts; it
// may over-count only messages that arrive more than WINDOW places late after being counted.

export type SequenceVerdict = 'first' | 'next' | 'gap' | 'duplicate' | 'reorder' | 'stale' | 'pending';

export interface SequenceCounters {
  /** Messages that arrived again (same seq within the window). */
  duplicates: number;
  /** Times the sequence skipped ahead (some of those later filled in by late messages). */
  gaps: number;
  /** Seqs skipped and not (yet) arrived: what the devices sent that did not get here. */
  missing: number;
  /** Seqs skipped ahead in total (only grows: `missing` is this less the ones that came late). */
  skipped: number;
  /** Messages that arrived late but within the window (each one taken off `missing`). */
  reorders: number;
  /** Runs a device restarted (its seq went back while its clock went on). */
  resets: number;
  /** Messages outside the run: older than the window, or a stray from another run or counter. */
  stale: number;
}

/** How far back (and, without a second look, ahead) a message still counts as part of the run. */
export const SEQUENCE_WINDOW = 1024;
const WORDS = SEQUENCE_WINDOW / 32;

interface DeviceRun {
  highest: number;
  /** The device time of `highest`. */
  newestTs: number;
  /** The first seq of this run: seqs below it were never expected, so never counted missing. */
  floor: number;
  /** Bit (seq mod WINDOW) set when that seq of the last WINDOW arrived. */
  seen: Uint32Array;
  /** A message that did not fit the run, waiting for the next one to say which run continues. */
  pending?: { seq: number; ts: number };
}

export class SequenceTracker {
  readonly counters: SequenceCounters = { duplicates: 0, gaps: 0, missing: 0, skipped: 0, reorders: 0, resets: 0, stale: 0 };
  private readonly devices = new Map<string, DeviceRun>();

  /** Records `seq` (sent at device time `ts`) for `device` and says how it relates to what came before. */
  check(device: string, seq: number, ts: number): SequenceVerdict {
    const run = this.devices.get(device);
    if (!run) {
      this.devices.set(device, startRun(seq, ts));
      return 'first';
    }
    const ahead = seq - run.highest;
    // An old message of the run (late, a duplicate) says nothing about a pending one.
    if (run.pending && !(ahead <= 0 && ts <= run.newestTs)) this.resolve(run, seq);
    if (ahead > 0 && ahead <= SEQUENCE_WINDOW && ts >= run.newestTs) return this.advance(run, seq, ts);
    if (ahead <= 0 && ts <= run.newestTs) {
      if (-ahead >= SEQUENCE_WINDOW) {
        this.counters.stale++;
        return 'stale';
      }
      if (isSeen(run, seq)) {
        this.counters.duplicates++;
        return 'duplicate';
      }
      markSeen(run, seq);
      this.counters.reorders++;
      if (seq >= run.floor) this.counters.missing--;
      return 'reorder';
    }
    run.pending = { seq, ts };
    return 'pending';
  }

  forget(device: string): void {
    this.devices.delete(device);
  }

  /** The next message (not an old one of the run) after a pending one: whichever run it is closer to continues. */
  private resolve(run: DeviceRun, seq: number): void {
    const pending = run.pending!;
    run.pending = undefined;
    if (Math.abs(seq - pending.seq) >= Math.abs(seq - run.highest)) {
      this.counters.stale++;
      return;
    }
    if (pending.seq > run.highest) {
      // A big gap, or (ahead in seq, behind in time) the device's clock was set back.
      this.advance(run, pending.seq, pending.ts);
      return;
    }
    this.counters.resets++;
    Object.assign(run, startRun(pending.seq, pending.ts));
  }

  private advance(run: DeviceRun, seq: number, ts: number): SequenceVerdict {
    const skipped = seq - run.highest - 1;
    if (skipped >= SEQUENCE_WINDOW - 1) run.seen.fill(0);
    else for (let s = run.highest + 1; s < seq; s++) clearSeen(run, s);
    markSeen(run, seq);
    run.highest = seq;
    run.newestTs = ts;
    if (skipped === 0) return 'next';
    this.counters.gaps++;
    this.counters.missing += skipped;
    this.counters.skipped += skipped;
    return 'gap';
  }
}

function startRun(seq: number, ts: number): DeviceRun {
  const run: DeviceRun = { highest: seq, newestTs: ts, floor: seq, seen: new Uint32Array(WORDS) };
  markSeen(run, seq);
  return run;
}

function isSeen(run: DeviceRun, seq: number): boolean {
  const index = seq % SEQUENCE_WINDOW;
  return (run.seen[index >>> 5]! & (1 << (index & 31))) !== 0;
}

function markSeen(run: DeviceRun, seq: number): void {
  const index = seq % SEQUENCE_WINDOW;
  run.seen[index >>> 5]! |= 1 << (index & 31);
}

function clearSeen(run: DeviceRun, seq: number): void {
  const index = seq % SEQUENCE_WINDOW;
  run.seen[index >>> 5]! &= ~(1 << (index & 31));
}
