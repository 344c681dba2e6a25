// Finding the next intact record after damage in a segment. A record's CRC covers its payload,
// not its length, so a damaged length gives no way to step to the next record: this scans
// forward, byte by byte, for the first offset where a plausible length and a matching CRC frame
// a whole record. A false match needs a CRC-32 to match by chance (2^-32 per candidate); payloads
// that are text (JSON, line protocol) hold no 0x00 byte, so no frame can hide inside one.
//
// Records of both owners are a few hundred bytes, so a candidate claiming at most SMALL_RECORD
// bytes is always checked; one claiming more (random bytes from a bad block claim a plausible
// length of several MiB at about one offset in a few hundred) only while LARGE_CRC_BUDGET lasts,
// after that it is passed over — so a record bigger than SMALL_RECORD right behind a large damaged
// region may be missed, never the rest of the segment.
//
// Cost per damaged region: the bytes from the damage to the next intact record are read once in
// 1 MiB windows and scanned at a few ns a byte (a length of at most MAX_RECORD has 0x00 or 0x01 as
// its high byte, which rejects most offsets with one comparison); candidates get a CRC-32 of the
// length they claim: at most SMALL_RECORD per candidate offset, and LARGE_CRC_BUDGET (64 MiB,
// ~45 ms at 1.5 GB/s) for all large ones together.
import { crc32 } from 'node:zlib';
import { HEADER, impossibleLength } from './frame.js';

/** Candidates claiming at most this many bytes are always checked. */
export const SMALL_RECORD = 64 * 1024;
/** CRC-32 bytes computed at most for candidates claiming more, per damaged region. */
export const LARGE_CRC_BUDGET = 64 * 1024 * 1024;
const WINDOW = 1024 * 1024;

export type Resync =
  /** An intact record starts at `offset`. */
  | { found: true; offset: number }
  /** None up to the end of the segment (`unsure`: some large candidates were passed over, so it is not known). */
  | { found: false; unsure: boolean };

/**
 * The first offset after `from` (where a record failed: an impossible length or a CRC mismatch)
 * at which a whole record with a matching CRC starts, in a segment of `size` bytes read through `read`.
 */
export function nextIntactRecord(read: (offset: number, length: number) => Buffer, from: number, size: number): Resync {
  let largeBudget = LARGE_CRC_BUDGET;
  let unsure = false;
  // Window at `start`: offsets start … start + window.length - HEADER have a whole header in it.
  for (let start = from + 1; size - start > HEADER; ) {
    const window = read(start, Math.min(WINDOW + HEADER, size - start));
    const last = window.length - HEADER;
    if (last < 1) break; // the file is shorter than its size said
    for (let at = 0; at <= last; at++) {
      if (window[at + 3]! > 1) continue; // a length's high byte (MAX_RECORD is 0x01000000)
      const length = window.readUInt32LE(at);
      const offset = start + at;
      if (impossibleLength(length, size - offset - HEADER)) continue;
      if (length > SMALL_RECORD) {
        if (length > largeBudget) {
          unsure = true;
          continue;
        }
        largeBudget -= length;
      }
      const payload = at + HEADER + length <= window.length ? window.subarray(at + HEADER, at + HEADER + length) : read(offset + HEADER, length);
      if (crc32(payload) === window.readUInt32LE(at + 4)) return { found: true, offset };
    }
    start += last + 1;
  }
  return { found: false, unsure };
}
