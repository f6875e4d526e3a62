/**
 * How the SQLite store's operation log is written (the worker reads it: sqlite-worker.ts). A
 * record is a frame — payload length (u32 LE), CRC-32 of the payload (u32 LE) — around a binary
 * payload, so that neither side parses JSON to find its fields: its kind (u8), its number (f64:
 * 1, 2, 3, … over the store's life; the database keeps the last one applied, so that a replay
 * applies exactly what it lacks), then
 *
 * - `A` accept: count (u32), then per job: seq (f64), submittedAt (f64), id, spec JSON, state, status JSON
 * - `U` update: id, state, status JSON
 * - `P` prune: count (u32), then ids
 * - `Z` paused: 0 or 1 (u8)
 *
 * A string is its UTF-8 byte length (u32 LE) and its bytes. The JSON texts are the columns the
 * worker writes as they are.
 */
import { crc32 } from 'node:zlib';

export const RECORD = { accept: 0x41, update: 0x55, prune: 0x50, paused: 0x5a } as const;

/** Frame header: payload length, CRC-32. */
export const FRAME_BYTES = 8;

/** A growing buffer of records. */
export class RecordWriter {
  bytes: Buffer;
  used = 0;
  /** Records in it. */
  records = 0;
  private start = 0;

  constructor(private readonly initial = 64 * 1024) {
    this.bytes = Buffer.allocUnsafeSlow(initial);
  }

  /** Starts record number `n`, of `kind`. */
  begin(kind: number, n: number): void {
    this.ensure(FRAME_BYTES + 9);
    this.start = this.used;
    this.used += FRAME_BYTES;
    this.bytes[this.used++] = kind;
    this.bytes.writeDoubleLE(n, this.used);
    this.used += 8;
  }

  u8(value: number): void {
    this.ensure(1);
    this.bytes[this.used++] = value;
  }

  u32(value: number): void {
    this.ensure(4);
    this.bytes.writeUInt32LE(value, this.used);
    this.used += 4;
  }

  f64(value: number): void {
    this.ensure(8);
    this.bytes.writeDoubleLE(value, this.used);
    this.used += 8;
  }

  str(value: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    this.ensure(4 + value.length * 3);
    const n = this.bytes.write(value, this.used + 4, 'utf8');
    this.bytes.writeUInt32LE(n, this.used);
    this.used += 4 + n;
  }

  /** Ends the record begun last: its frame gets its length and checksum. */
  end(): void {
    const payload = this.bytes.subarray(this.start + FRAME_BYTES, this.used);
    this.bytes.writeUInt32LE(payload.length, this.start);
    this.bytes.writeUInt32LE(crc32(payload), this.start + 4);
    this.records++;
  }

  /** Drops the record begun last (it could not be finished). */
  abandon(): void {
    this.used = this.start;
  }

  /** Appends records another writer holds. */
  append(from: RecordWriter): void {
    this.ensure(from.used);
    from.bytes.copy(this.bytes, this.used, 0, from.used);
    this.used += from.used;
    this.records += from.records;
  }

  /** A copy of what it holds, in a buffer of its own (to hand to another thread). */
  copy(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.bytes.subarray(0, this.used));
  }

  /** Empties it (a buffer grown large goes back to its first size). */
  reset(): void {
    this.used = 0;
    this.records = 0;
    if (this.bytes.length > 16 * this.initial) this.bytes = Buffer.allocUnsafeSlow(this.initial);
  }

  private ensure(more: number): void {
    if (this.used + more <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.used + more) size *= 2;
    const bigger = Buffer.allocUnsafeSlow(size);
    this.bytes.copy(bigger, 0, 0, this.used);
    this.bytes = bigger;
  }
}
