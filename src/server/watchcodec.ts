import type * as grpc from '@grpc/grpc-js';
import type { KeyValue, StoreEvent } from '../store/types.ts';
import type { OutResponse } from '../watch/session.ts';
import { kvLen, leaseBytes, Out, varint64, varintSize, writeKv } from '../store/kvbytes.ts';

/**
 * A hand-written protobuf encoder for etcdserverpb.WatchResponse. A write fans out to many
 * watchers with the same events; encoding each event once (cached per event object) and only
 * the few per-watcher fields per response makes a fan-out cost a buffer copy per watcher instead
 * of a protobufjs fromObject + encode (with decimal int64 parsing) per watcher. Field numbers
 * are etcd's (proto/etcdserverpb/rpc.proto, proto/mvccpb/kv.proto); zero values are omitted as
 * proto3 does. tests/watch.codec.test.ts checks it against protobufjs.
 */

/** One element of WatchResponse.events (field 11): tag, length and mvccpb.Event. */
export function encodeEventField(ev: StoreEvent): Buffer {
  const lease = leaseBytes(ev.kv.lease);
  const kl = kvLen(ev.kv, lease);
  const prevLease = ev.prev_kv ? leaseBytes(ev.prev_kv.lease) : undefined;
  const pl = ev.prev_kv ? kvLen(ev.prev_kv, prevLease) : 0;
  const body = (ev.type !== 0 ? 2 : 0) + 1 + varintSize(kl) + kl + (ev.prev_kv ? 1 + varintSize(pl) + pl : 0);
  const o = new Out(Buffer.allocUnsafe(1 + varintSize(body) + body));
  o.byte(0x5a);
  o.varint(body);
  if (ev.type !== 0) { o.byte(0x08); o.varint(ev.type); }
  o.byte(0x12);
  o.varint(kl);
  writeKv(o, ev.kv, lease);
  if (ev.prev_kv) {
    o.byte(0x1a);
    o.varint(pl);
    writeKv(o, ev.prev_kv, prevLease);
  }
  return o.buf;
}

export class WatchResponseEncoder {
  /** cluster_id and member_id fields of the ResponseHeader: the same in every response. */
  private readonly ids: Buffer;
  private readonly events = new WeakMap<StoreEvent, Buffer>();
  private readonly watchIds = new Map<string, Buffer>();

  constructor(clusterId: string, memberId: string, private readonly raftTerm: number) {
    this.ids = Buffer.concat([Buffer.from([0x08]), varint64(clusterId), Buffer.from([0x10]), varint64(memberId)]);
  }

  encode(r: OutResponse): Buffer {
    const evs: Buffer[] = [];
    let evLen = 0;
    for (const e of r.events) {
      let b = this.events.get(e);
      if (!b) {
        b = encodeEventField(e);
        this.events.set(e, b);
      }
      evs.push(b);
      evLen += b.length;
    }
    const headerLen = this.ids.length + (r.revision !== 0 ? 1 + varintSize(r.revision) : 0) + (this.raftTerm !== 0 ? 1 + varintSize(this.raftTerm) : 0);
    const id = r.watchId === '0' ? undefined : this.watchId(r.watchId);
    const reason = r.cancelReason ? Buffer.from(r.cancelReason) : undefined;
    const len = 1 + varintSize(headerLen) + headerLen + (id ? 1 + id.length : 0) + (r.created ? 2 : 0) + (r.canceled ? 2 : 0) +
      (r.compactRevision !== 0 ? 1 + varintSize(r.compactRevision) : 0) + (reason ? 1 + varintSize(reason.length) + reason.length : 0) +
      (r.fragment ? 2 : 0) + evLen;
    const o = new Out(Buffer.allocUnsafe(len));
    o.byte(0x0a);
    o.varint(headerLen);
    o.bytes(this.ids);
    if (r.revision !== 0) { o.byte(0x18); o.varint(r.revision); }
    if (this.raftTerm !== 0) { o.byte(0x20); o.varint(this.raftTerm); }
    if (id) { o.byte(0x10); o.bytes(id); }
    if (r.created) { o.byte(0x18); o.byte(1); }
    if (r.canceled) { o.byte(0x20); o.byte(1); }
    if (r.compactRevision !== 0) { o.byte(0x28); o.varint(r.compactRevision); }
    if (reason) { o.byte(0x32); o.varint(reason.length); o.bytes(reason); }
    if (r.fragment) { o.byte(0x38); o.byte(1); }
    for (const b of evs) o.bytes(b);
    return o.buf;
  }

  private watchId(id: string): Buffer {
    let b = this.watchIds.get(id);
    if (!b) {
      b = varint64(id);
      if (this.watchIds.size > 100_000) this.watchIds.clear();
      this.watchIds.set(id, b);
    }
    return b;
  }
}

/**
 * A service definition (Watch, KV) with a response serializer that passes pre-encoded responses
 * (Buffers) through; anything else goes to the .proto's serializer.
 */
export function preEncodedDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const [name, m] of Object.entries(def)) {
    const method = m as grpc.MethodDefinition<object, object>;
    const serialize = method.responseSerialize;
    out[name] = { ...method, responseSerialize: (v: object) => (Buffer.isBuffer(v) ? v : serialize(v)) };
  }
  return out as grpc.ServiceDefinition;
}
