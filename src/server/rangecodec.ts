import type { KeyValue } from '../store/types.ts';
import { varintSize } from '../watch/size.ts';
import { kvLen, leaseBytes, Out, varint64, writeKv } from './watchcodec.ts';

/**
 * A hand-written encoder for etcdserverpb.RangeResponse (header=1, kvs=2, more=3, count=4), so a
 * list of thousands of keys is written straight into one buffer instead of going through
 * protobufjs fromObject + encode. Zero values are omitted as proto3 does. Clients decode it like
 * any RangeResponse; the KV tests (raw proto decoding, etcd3, Go clientv3) check it.
 */
export class RangeResponseEncoder {
  private readonly ids: Buffer;

  constructor(clusterId: string, memberId: string, private readonly raftTerm: number) {
    this.ids = Buffer.concat([Buffer.from([0x08]), varint64(clusterId), Buffer.from([0x10]), varint64(memberId)]);
  }

  encode(revision: number, kvs: KeyValue[], more: boolean, count: number): Buffer {
    const headerLen = this.ids.length + (revision !== 0 ? 1 + varintSize(revision) : 0) + (this.raftTerm !== 0 ? 1 + varintSize(this.raftTerm) : 0);
    let len = 1 + varintSize(headerLen) + headerLen;
    const leases: Array<Buffer | undefined> = new Array(kvs.length);
    const lens: number[] = new Array(kvs.length);
    for (let i = 0; i < kvs.length; i++) {
      const kv = kvs[i]!;
      leases[i] = leaseBytes(kv.lease);
      const l = kvLen(kv, leases[i]);
      lens[i] = l;
      len += 1 + varintSize(l) + l;
    }
    if (more) len += 2;
    if (count !== 0) len += 1 + varintSize(count);
    const o = new Out(Buffer.allocUnsafe(len));
    o.byte(0x0a);
    o.varint(headerLen);
    o.bytes(this.ids);
    if (revision !== 0) { o.byte(0x18); o.varint(revision); }
    if (this.raftTerm !== 0) { o.byte(0x20); o.varint(this.raftTerm); }
    for (let i = 0; i < kvs.length; i++) {
      o.byte(0x12);
      o.varint(lens[i]!);
      writeKv(o, kvs[i]!, leases[i]);
    }
    if (more) { o.byte(0x18); o.byte(1); }
    if (count !== 0) { o.byte(0x20); o.varint(count); }
    return o.buf;
  }
}
