// The write-ahead log's committed position on disk, in a file that never needs free space to be
// updated — so a reader makes progress on a full disk: writing a new file and renaming it fails
// with ENOSPC exactly when draining the log is the way out.
//
//   committed.pos  two 32-byte slots, allocated when the log opens, overwritten in place in turn
//   slot           u32le magic "LWC1" | u32le CRC-32 of the next 24 bytes | u64le sequence | u64le segment | u64le offset
//
// The newest slot whose magic and CRC match is the position. A write torn by a power loss can
// spoil only the slot being written; the other still holds the position before it (replaying
// from there delivers a few records again: the log is at least once). Overwriting allocated blocks needs
// no new ones on ext4, xfs and tmpfs; on copy-on-write filesystems (btrfs, ZFS) it does.
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';

/** A place in the log: everything before `offset` in segment `segment` (and all earlier segments). */
export interface WalPosition {
  segment: number;
  offset: number;
}

const MAGIC = 0x3143574c; // "LWC1"
const SLOT = 32;

export class CommitFile {
  private fd = -1;
  private sequence = 0n;
  private readonly slot = Buffer.alloc(SLOT);

  constructor(readonly path: string) {}

  /** Opens the file (creating and allocating it if missing) and returns the position it holds, if any. */
  open(): WalPosition | undefined {
    try {
      this.fd = openSync(this.path, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.fd = openSync(this.path, 'w+');
    }
    if (fstatSync(this.fd).size < 2 * SLOT) writeSync(this.fd, Buffer.alloc(2 * SLOT), 0, 2 * SLOT, 0);
    let newest: { sequence: bigint; position: WalPosition } | undefined;
    for (let index = 0; index < 2; index++) {
      const slot = Buffer.alloc(SLOT);
      readSync(this.fd, slot, 0, SLOT, index * SLOT);
      if (slot.readUInt32LE(0) !== MAGIC || slot.readUInt32LE(4) !== crc32(slot.subarray(8))) continue;
      const sequence = slot.readBigUInt64LE(8);
      if (!newest || sequence > newest.sequence) newest = { sequence, position: { segment: Number(slot.readBigUInt64LE(16)), offset: Number(slot.readBigUInt64LE(24)) } };
    }
    this.sequence = newest?.sequence ?? 0n;
    return newest?.position;
  }

  /** Records `position` in the slot not holding the newest one: one pwrite(2) of 32 bytes, no new space. */
  write(position: WalPosition): void {
    if (this.fd < 0) throw new Error(`${this.path} is not open`);
    const sequence = this.sequence + 1n;
    const slot = this.slot;
    slot.writeUInt32LE(MAGIC, 0);
    slot.writeBigUInt64LE(sequence, 8);
    slot.writeBigUInt64LE(BigInt(position.segment), 16);
    slot.writeBigUInt64LE(BigInt(position.offset), 24);
    slot.writeUInt32LE(crc32(slot.subarray(8)), 4);
    writeSync(this.fd, slot, 0, SLOT, Number(sequence % 2n) * SLOT);
    this.sequence = sequence;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
