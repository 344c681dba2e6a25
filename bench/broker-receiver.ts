// Counts what a consumer received, at the receiver: unique messages per device (by seq),
// duplicates, and end-to-end latency from the device timestamp in the payload.

export interface ReceiverResult {
  received: number;
  unique: number;
  duplicates: number;
  p50Ms: number;
  p99Ms: number;
}

export const BENCH_PASSWORD = 'bench-password';
/** The bench's device usernames (and topic levels): B/d0 … B/d99. */
export const deviceName = (i: number): string => `B/d${i}`;

const MAX_LATENCY_MS = 120_000;

export class Receiver {
  private received = 0;
  private duplicates = 0;
  private unique = 0;
  private readonly seen = new Map<string, Set<number>>();
  private readonly latency = new Uint32Array(MAX_LATENCY_MS + 1);

  onMessage(topic: string, payload: Buffer): void {
    const now = Date.now();
    this.received++;
    const { ts, seq } = JSON.parse(payload.toString()) as { ts: number; seq: number };
    let seqs = this.seen.get(topic);
    if (!seqs) this.seen.set(topic, (seqs = new Set()));
    if (seqs.has(seq)) {
      this.duplicates++;
      return;
    }
    seqs.add(seq);
    this.unique++;
    this.latency[Math.min(MAX_LATENCY_MS, Math.max(0, now - ts))]!++;
  }

  result(): ReceiverResult {
    return { received: this.received, unique: this.unique, duplicates: this.duplicates, p50Ms: this.percentile(0.5), p99Ms: this.percentile(0.99) };
  }

  reset(): void {
    this.received = 0;
    this.duplicates = 0;
    this.unique = 0;
    this.seen.clear();
    this.latency.fill(0);
  }

  private percentile(q: number): number {
    const target = Math.ceil(this.unique * q);
    let count = 0;
    for (let ms = 0; ms < this.latency.length; ms++) {
      count += this.latency[ms]!;
      if (count >= target && count > 0) return ms;
    }
    return 0;
  }
}

/** A valid telemetry payload of exactly `size` bytes carrying the send time and the sequence number. */
export function telemetryPayload(ts: number, seq: number, size = 64): Buffer {
  // Padded with JSON whitespace: a padding field would have to be a valid id (a station may not be empty).
  const base = `{"ts":${ts},"seq":${seq},"values":{"v":1}}`;
  const pad = size - Buffer.byteLength(base);
  return Buffer.from(`{"ts":${ts},"seq":${seq},"values":{"v":1}${' '.repeat(Math.max(0, pad))}}`);
}
