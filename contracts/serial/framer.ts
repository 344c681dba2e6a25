// Splits a serial byte stream into lines with a hard upper bound on what it holds: a line longer
// than `maxBytes` is dropped (reason `overlong`) and everything up to the next newline skipped.
export type FrameDropReason = 'overlong' | 'partial';

export class LineFramer {
  private chunks: Buffer[] = [];
  private held = 0;
  private skipping = false;

  constructor(
    private readonly maxBytes: number,
    private readonly onLine: (line: Buffer) => void,
    private readonly onDrop: (reason: FrameDropReason, bytes: number) => void,
  ) {}

  push(data: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, start);
      if (nl === -1) break;
      this.take(data.subarray(start, nl), true);
      start = nl + 1;
    }
    if (start < data.length) this.take(data.subarray(start), false);
  }

  /** Bytes of an unfinished line (e.g. the port closed mid-frame) are dropped as `partial`. */
  reset(): void {
    if (this.held > 0 && !this.skipping) this.onDrop('partial', this.held);
    this.chunks = [];
    this.held = 0;
    this.skipping = false;
  }

  private take(piece: Buffer, complete: boolean): void {
    if (this.skipping) {
      if (complete) this.skipping = false;
      return;
    }
    if (this.held + piece.length > this.maxBytes) {
      this.onDrop('overlong', this.held + piece.length);
      this.chunks = [];
      this.held = 0;
      this.skipping = !complete;
      return;
    }
    if (!complete) {
      // Copy: the serial port may reuse its read buffer.
      this.chunks.push(Buffer.from(piece));
      this.held += piece.length;
      return;
    }
    let line = this.held === 0 ? piece : Buffer.concat([...this.chunks, piece]);
    this.chunks = [];
    this.held = 0;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length > 0) this.onLine(line);
  }
}
