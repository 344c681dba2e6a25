// The record framing of the write-ahead log: each record is
//
//   u32le length | u32le CRC-32 (IEEE) of the payload | payload (UTF-8)
//
// A zero length, one above MAX_RECORD, or one that runs past the end of the segment comes from a
// torn write (a crash mid-append, zeros after a power loss) or a damaged length; a payload that
// does not match the CRC from a damaged payload or length (the CRC covers the payload only). The
// reader tells them apart by looking for the next intact record (resync.ts): none in the rest of
// the segment is a torn tail, one further on ends a damaged region.
import { crc32 } from 'node:zlib';

export const HEADER = 8;
/** Larger lengths can only come from a torn or corrupted header. */
export const MAX_RECORD = 16 * 1024 * 1024;

/** Bytes a payload takes on disk, header included. */
export function recordBytes(payload: string): number {
  return HEADER + Buffer.byteLength(payload);
}

/** The framed records for `payloads`, whose UTF-8 lengths are `lengths` (one buffer, one write(2)). */
export function frameRecords(payloads: readonly string[], lengths: readonly number[], total: number): Buffer {
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  for (let index = 0; index < lengths.length; index++) {
    const length = lengths[index]!;
    buf.write(payloads[index]!, at + HEADER, length, 'utf8');
    buf.writeUInt32LE(length, at);
    buf.writeUInt32LE(crc32(buf.subarray(at + HEADER, at + HEADER + length)), at + 4);
    at += HEADER + length;
  }
  return buf;
}

/** A length read from a header that no whole record can have (`room`: bytes left in the segment after the header). */
export function impossibleLength(length: number, room: number): boolean {
  return length === 0 || length > MAX_RECORD || length > room;
}

/** The payload of the record at `at` in `buf` (its whole record present), or undefined when it does not match its CRC. */
export function payloadOf(buf: Buffer, at: number, length: number): string | undefined {
  const payload = buf.subarray(at + HEADER, at + HEADER + length);
  return crc32(payload) === buf.readUInt32LE(at + 4) ? payload.toString('utf8') : undefined;
}
