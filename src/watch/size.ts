import { varintSize } from '../store/kvbytes.ts';
import type { KeyValue, StoreEvent } from '../store/types.ts';

/**
 * Protobuf encoded sizes of watch messages, computed without encoding: the session uses them to
 * split and fragment responses (etcd limits a fragment by its encoded size) and to count the
 * bytes a slow stream holds. Exact for events; the response header is bounded from above.
 */

function bytesField(len: number): number {
  return len === 0 ? 0 : 1 + varintSize(len) + len;
}

function intField(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n);
}

function leaseField(lease: string): number {
  if (lease === '0' || lease === '') return 0;
  return 1 + (lease.startsWith('-') ? 10 : varintSize(Number(lease)));
}

export function keyValueSize(kv: KeyValue): number {
  return bytesField(kv.key.length) + intField(kv.create_revision) + intField(kv.mod_revision) +
    intField(kv.version) + bytesField(kv.value.length) + leaseField(kv.lease);
}

/** Size of an Event as an element of WatchResponse.events (tag and length included). */
export function eventFieldSize(ev: StoreEvent): number {
  const kv = keyValueSize(ev.kv);
  let body = (ev.type !== 0 ? 2 : 0) + 1 + varintSize(kv) + kv;
  if (ev.prev_kv) {
    const p = keyValueSize(ev.prev_kv);
    body += 1 + varintSize(p) + p;
  }
  return 1 + varintSize(body) + body;
}

/** Upper bound of a ResponseHeader field (two full uint64 ids, revision, raft term). */
const HEADER_BOUND = 2 + 11 + 11 + 11 + 11;

/** Size of a WatchResponse without its events (an upper bound: ids at their widest). */
export function responseBaseSize(compactRevision: number, cancelReason: string): number {
  return HEADER_BOUND + 11 /* watch_id */ + 6 /* created, canceled, fragment */ +
    intField(compactRevision) + bytesField(Buffer.byteLength(cancelReason));
}
