/**
 * Reading the packed key-values of a PackedRangeResponse (layout in types.ts): per key,
 * create_revision, mod_revision, version and lease as big-endian int64, then an int32 length
 * and the key, then an int32 length and the value.
 */
export interface PackedEntry {
  create_revision: number;
  mod_revision: number;
  version: number;
  /** Decimal, '0' for no lease (lease IDs use all of int64). */
  lease: string;
  keyAt: number;
  keyLen: number;
  valueAt: number;
  valueLen: number;
  /** Where the next entry starts. */
  end: number;
}

/** A non-negative int64 below 2^53 (revisions, versions), big-endian at `at`. */
function uint53(b: Buffer, at: number): number {
  return b.readUInt32BE(at) * 4294967296 + b.readUInt32BE(at + 4);
}

/** The entry starting at byte `at` of a packed buffer. */
export function packedEntry(b: Buffer, at: number): PackedEntry {
  const lease = b.readInt32BE(at + 24) === 0 && b.readUInt32BE(at + 28) === 0 ? '0' : b.readBigInt64BE(at + 24).toString();
  const keyLen = b.readUInt32BE(at + 32);
  const keyAt = at + 36;
  const valueLen = b.readUInt32BE(keyAt + keyLen);
  const valueAt = keyAt + keyLen + 4;
  return {
    create_revision: uint53(b, at), mod_revision: uint53(b, at + 8), version: uint53(b, at + 16), lease,
    keyAt, keyLen, valueAt, valueLen, end: valueAt + valueLen,
  };
}
