import { packedEntry, type PackedEntry } from '../store/packed.ts';
import type { PackedRangeResponse } from '../store/types.ts';
import { leaseBytes, Out, varint64, varintSize } from '../store/kvbytes.ts';

/**
 * A hand-written encoder for etcdserverpb.RangeResponse (header=1, kvs=2, more=3, count=4): a
 * list of thousands of keys goes from the head cache's per-key encodings or the buffer PostgreSQL
 * packed it in (see PackedRangeResponse) into one response buffer, with no object per key and no
 * protobufjs.
 * Zero values are omitted as proto3 does. Clients decode it like any RangeResponse; the KV
 * tests (raw proto decoding, etcd3, Go clientv3) check it.
 */
export class RangeResponseEncoder {
  private readonly ids: Buffer;

  constructor(clusterId: string, memberId: string, private readonly raftTerm: number) {
    this.ids = Buffer.concat([Buffer.from([0x08]), varint64(clusterId), Buffer.from([0x10]), varint64(memberId)]);
  }

  /**
   * From the store's key-values: the head cache's (one mvccpb.KeyValue encoding per key, copied
   * as they are) or PostgreSQL's packed buffer (see PackedRangeResponse), without an object per
   * key.
   */
  encodePacked(r: PackedRangeResponse): Buffer {
    return r.entries ? this.encodeEntries(r, r.entries) : this.encodeFromPacked(r);
  }

  private encodeEntries(r: PackedRangeResponse, entries: readonly Buffer[]): Buffer {
    const headerLen = this.headerLen(r.header.revision);
    let len = 1 + varintSize(headerLen) + headerLen + this.tailLen(r);
    for (let i = 0; i < r.kvs; i++) {
      const n = entries[i]!.length;
      len += 1 + varintSize(n) + n;
    }
    const o = new Out(Buffer.allocUnsafe(len));
    this.writeHeader(o, headerLen, r.header.revision);
    const buf = o.buf;
    for (let i = 0; i < r.kvs; i++) {
      const e = entries[i]!;
      buf[o.pos++] = 0x12;
      o.varint(e.length);
      buf.set(e, o.pos);
      o.pos += e.length;
    }
    this.writeTail(o, r);
    return buf;
  }

  private encodeFromPacked(r: PackedRangeResponse): Buffer {
    const headerLen = this.headerLen(r.header.revision);
    let len = 1 + varintSize(headerLen) + headerLen + this.tailLen(r);
    const entries: PackedEntry[] = new Array(r.kvs);
    const kvLens: number[] = new Array(r.kvs);
    const leases: Array<Buffer | undefined> = new Array(r.kvs);
    let pos = 0;
    for (let i = 0; i < r.kvs; i++) {
      const e = packedEntry(r.packed, pos);
      const lease = leaseBytes(e.lease);
      let n = 1 + varintSize(e.keyLen) + e.keyLen;
      if (e.create_revision !== 0) n += 1 + varintSize(e.create_revision);
      if (e.mod_revision !== 0) n += 1 + varintSize(e.mod_revision);
      if (e.version !== 0) n += 1 + varintSize(e.version);
      if (e.valueLen > 0) n += 1 + varintSize(e.valueLen) + e.valueLen;
      if (lease) n += 1 + lease.length;
      entries[i] = e;
      kvLens[i] = n;
      leases[i] = lease;
      len += 1 + varintSize(n) + n;
      pos = e.end;
    }
    const o = new Out(Buffer.allocUnsafe(len));
    this.writeHeader(o, headerLen, r.header.revision);
    const p = r.packed;
    for (let i = 0; i < r.kvs; i++) {
      const e = entries[i]!;
      o.byte(0x12);
      o.varint(kvLens[i]!);
      if (e.keyLen > 0) { o.byte(0x0a); o.varint(e.keyLen); o.bytes(p.subarray(e.keyAt, e.keyAt + e.keyLen)); }
      if (e.create_revision !== 0) { o.byte(0x10); o.varint(e.create_revision); }
      if (e.mod_revision !== 0) { o.byte(0x18); o.varint(e.mod_revision); }
      if (e.version !== 0) { o.byte(0x20); o.varint(e.version); }
      if (e.valueLen > 0) { o.byte(0x2a); o.varint(e.valueLen); o.bytes(p.subarray(e.valueAt, e.valueAt + e.valueLen)); }
      const lease = leases[i];
      if (lease) { o.byte(0x30); o.bytes(lease); }
    }
    this.writeTail(o, r);
    return o.buf;
  }

  /** more=3 and count=4. */
  private tailLen(r: PackedRangeResponse): number {
    return (r.more ? 2 : 0) + (r.count !== 0 ? 1 + varintSize(r.count) : 0);
  }

  private writeTail(o: Out, r: PackedRangeResponse): void {
    if (r.more) { o.byte(0x18); o.byte(1); }
    if (r.count !== 0) { o.byte(0x20); o.varint(r.count); }
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
