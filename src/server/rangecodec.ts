import type { PackedRangeResponse } from '../store/types.ts';
import { varintSize } from '../watch/size.ts';
import { leaseBytes, Out, varint64 } from './watchcodec.ts';

/**
 * A hand-written encoder for etcdserverpb.RangeResponse (header=1, kvs=2, more=3, count=4): a
 * list of thousands of keys goes from the buffer PostgreSQL packed it in (see
 * PackedRangeResponse) into one response buffer, with no object per key and no protobufjs.
 * Zero values are omitted as proto3 does. Clients decode it like any RangeResponse; the KV
 * tests (raw proto decoding, etcd3, Go clientv3) check it.
 */
export class RangeResponseEncoder {
  private readonly ids: Buffer;

  constructor(clusterId: string, memberId: string, private readonly raftTerm: number) {
    this.ids = Buffer.concat([Buffer.from([0x08]), varint64(clusterId), Buffer.from([0x10]), varint64(memberId)]);
  }

  /** From the store's packed key-values (see PackedRangeResponse), without an object per key. */
  encodePacked(r: PackedRangeResponse): Buffer {
    const p = r.packed;
    const headerLen = this.headerLen(r.header.revision);
    let len = 1 + varintSize(headerLen) + headerLen;
    const kvLens: number[] = new Array(r.kvs);
    const leases: Array<Buffer | undefined> = new Array(r.kvs);
    let pos = 0;
    for (let i = 0; i < r.kvs; i++) {
      const f = readFrame(p, pos);
      leases[i] = f.lease;
      let n = 1 + varintSize(f.keyLen) + f.keyLen;
      if (f.create !== 0) n += 1 + varintSize(f.create);
      if (f.mod !== 0) n += 1 + varintSize(f.mod);
      if (f.version !== 0) n += 1 + varintSize(f.version);
      if (f.valueLen > 0) n += 1 + varintSize(f.valueLen) + f.valueLen;
      if (f.lease) n += 1 + f.lease.length;
      kvLens[i] = n;
      len += 1 + varintSize(n) + n;
      pos = f.end;
    }
    if (r.more) len += 2;
    if (r.count !== 0) len += 1 + varintSize(r.count);
    const o = new Out(Buffer.allocUnsafe(len));
    this.writeHeader(o, headerLen, r.header.revision);
    pos = 0;
    for (let i = 0; i < r.kvs; i++) {
      const f = readFrame(p, pos);
      o.byte(0x12);
      o.varint(kvLens[i]!);
      if (f.keyLen > 0) { o.byte(0x0a); o.varint(f.keyLen); o.bytes(p.subarray(f.keyAt, f.keyAt + f.keyLen)); }
      if (f.create !== 0) { o.byte(0x10); o.varint(f.create); }
      if (f.mod !== 0) { o.byte(0x18); o.varint(f.mod); }
      if (f.version !== 0) { o.byte(0x20); o.varint(f.version); }
      if (f.valueLen > 0) { o.byte(0x2a); o.varint(f.valueLen); o.bytes(p.subarray(f.valueAt, f.valueAt + f.valueLen)); }
      const lease = leases[i];
      if (lease) { o.byte(0x30); o.bytes(lease); }
      pos = f.end;
    }
    if (r.more) { o.byte(0x18); o.byte(1); }
    if (r.count !== 0) { o.byte(0x20); o.varint(r.count); }
    return o.buf;
  }

  private headerLen(revision: number): number {
    return this.ids.length + (revision !== 0 ? 1 + varintSize(revision) : 0) + (this.raftTerm !== 0 ? 1 + varintSize(this.raftTerm) : 0);
  }

  private writeHeader(o: Out, headerLen: number, revision: number): void {
    o.byte(0x0a);
    o.varint(headerLen);
    o.bytes(this.ids);
    if (revision !== 0) { o.byte(0x18); o.varint(revision); }
    if (this.raftTerm !== 0) { o.byte(0x20); o.varint(this.raftTerm); }
  }
}

interface Frame {
  create: number;
  mod: number;
  version: number;
  /** The lease as a varint, undefined for no lease. */
  lease: Buffer | undefined;
  keyAt: number;
  keyLen: number;
  valueAt: number;
  valueLen: number;
  end: number;
}

/** A non-negative int64 below 2^53 (revisions, versions), big-endian at `at`. */
function uint53(b: Buffer, at: number): number {
  return b.readUInt32BE(at) * 4294967296 + b.readUInt32BE(at + 4);
}

/** One key of a PackedRangeResponse. */
function readFrame(b: Buffer, at: number): Frame {
  const create = uint53(b, at);
  const mod = uint53(b, at + 8);
  const version = uint53(b, at + 16);
  const hi = b.readInt32BE(at + 24);
  const lo = b.readUInt32BE(at + 28);
  const lease = hi === 0 && lo === 0 ? undefined : leaseBytes(b.readBigInt64BE(at + 24).toString());
  const keyLen = b.readUInt32BE(at + 32);
  const keyAt = at + 36;
  const valueLen = b.readUInt32BE(keyAt + keyLen);
  const valueAt = keyAt + keyLen + 4;
  return { create, mod, version, lease, keyAt, keyLen, valueAt, valueLen, end: valueAt + valueLen };
}
