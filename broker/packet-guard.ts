// Enforces the max MQTT packet size on the socket, before the packet is buffered.
//
// mqtt-packet (Aedes's parser) reads a packet's declared "remaining length" from the fixed
// header and then buffers bytes until that many have arrived — up to 256 MiB per connection
// (aedes#831). This scanner follows the fixed headers of the byte stream as it flows (type
// byte, then the 1–4 byte remaining-length varint, then the body it skips) and reports a
// packet that declares more than `maxBytes` before a single body byte reaches the parser.

export type GuardVerdict = { ok: true } | { ok: false; reason: 'oversize' | 'malformed'; declared?: number };

export class PacketSizeScanner {
  private state: 'type' | 'length' | 'body' = 'type';
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private bodyLeft = 0;

  constructor(private readonly maxBytes: number) {}

  /** Feeds the next chunk of the stream; returns the verdict for everything seen so far. */
  scan(chunk: Buffer): GuardVerdict {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'body') {
        const skip = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= skip;
        i += skip;
        if (this.bodyLeft === 0) this.state = 'type';
        continue;
      }
      if (this.state === 'type') {
        i++; // the type/flags byte; mqtt-packet itself refuses reserved types
        this.state = 'length';
        this.length = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
        continue;
      }
      const byte = chunk[i++]!;
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes++;
      if (byte & 0x80) {
        if (this.lengthBytes === 4) return { ok: false, reason: 'malformed' }; // varint longer than 4 bytes
        continue;
      }
      const total = 1 + this.lengthBytes + this.length;
      if (total > this.maxBytes) return { ok: false, reason: 'oversize', declared: total };
      this.bodyLeft = this.length;
      this.state = this.length === 0 ? 'type' : 'body';
    }
    return { ok: true };
  }
}

/** The part of a stream Aedes reads from: it pulls data with `read()` on 'readable'. */
export interface Readable {
  read(size?: number): unknown;
  destroy(error?: Error): unknown;
}

type Violation = GuardVerdict & { ok: false };
/** Told once per guarded stream that broke the limit; `label` is what guardPacketSize was given (e.g. the client's address). */
export type OnViolation = (verdict: Violation, stream: Readable, label: string) => void;

/** One connection's guard: the scanner's state, the stream's own `read`, its label, and whom to tell. */
class StreamGuard extends PacketSizeScanner {
  violated = false;
  constructor(
    maxBytes: number,
    readonly read: Readable['read'],
    readonly label: string,
    readonly onViolation: OnViolation,
  ) {
    super(maxBytes);
  }
}

const GUARD = Symbol('linewatch.packetGuard');
type GuardedStream = Readable & { [GUARD]: StreamGuard };

/** The `read` of every guarded stream (shared, so a connection costs one StreamGuard and no closures). */
function guardedRead(this: GuardedStream, size?: number): unknown {
  const guard = this[GUARD];
  if (guard.violated) return null;
  const chunk = guard.read.call(this, size);
  if (chunk === null || !Buffer.isBuffer(chunk)) return chunk;
  const verdict = guard.scan(chunk);
  if (verdict.ok) return chunk;
  guard.violated = true;
  guard.onViolation(verdict, this, guard.label);
  this.destroy();
  return null;
}

/**
 * Puts a PacketSizeScanner in front of every read Aedes makes from `stream`. Aedes consumes
 * the stream only through `read()` (on 'readable'), so wrapping that one method sees every
 * byte before the parser does, without copying it through another stream. On a violation
 * the stream is destroyed and `onViolation` is called once; the bytes never reach Aedes.
 * That Aedes reads only so is checked at the broker's start by assertReadsPulled (backpressure.ts).
 */
export function guardPacketSize(stream: Readable, maxBytes: number, label: string, onViolation: OnViolation): void {
  (stream as GuardedStream)[GUARD] = new StreamGuard(maxBytes, stream.read, label, onViolation);
  stream.read = guardedRead;
}

/** The label `stream` was guarded with (the client's address:port), or undefined if it is not guarded. */
export function guardLabelOf(stream: object): string | undefined {
  return (stream as Partial<GuardedStream>)[GUARD]?.label;
}
