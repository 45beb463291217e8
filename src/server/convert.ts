import type {
  Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, ResponseOp, TxnRequest, TxnResponse,
} from '../store/types.ts';
import type { WireCompare, WireDeleteRangeRequest, WirePutRequest, WireRangeRequest, WireRequestOp, WireTxnRequest } from './wire.ts';

/** Wire messages -> store requests. int64 fields that are revisions or counts become numbers. */

const EMPTY = Buffer.alloc(0);

function num(s: string | undefined): number {
  return s === undefined || s === '0' ? 0 : Number(s);
}

export function rangeFromWire(r: WireRangeRequest): RangeRequest {
  return {
    key: r.key, range_end: r.range_end, limit: num(r.limit), revision: num(r.revision),
    sort_order: r.sort_order, sort_target: r.sort_target, serializable: r.serializable,
    keys_only: r.keys_only, count_only: r.count_only,
    min_mod_revision: num(r.min_mod_revision), max_mod_revision: num(r.max_mod_revision),
    min_create_revision: num(r.min_create_revision), max_create_revision: num(r.max_create_revision),
  };
}

export function putFromWire(r: WirePutRequest): PutRequest {
  return {
    key: r.key, value: r.value, lease: r.lease === '' ? '0' : r.lease, prev_kv: r.prev_kv,
    ignore_value: r.ignore_value, ignore_lease: r.ignore_lease,
  };
}

export function deleteFromWire(r: WireDeleteRangeRequest): DeleteRangeRequest {
  return { key: r.key, range_end: r.range_end, prev_kv: r.prev_kv };
}

function compareFromWire(c: WireCompare): Compare {
  return {
    result: c.result, target: c.target, key: c.key, range_end: c.range_end,
    version: num(c.version), create_revision: num(c.create_revision), mod_revision: num(c.mod_revision),
    value: c.value ?? EMPTY, lease: c.lease ?? '0',
  };
}

function opFromWire(op: WireRequestOp): RequestOp {
  switch (op.request) {
    case 'request_range': if (op.request_range) return { type: 'range', range: rangeFromWire(op.request_range) }; break;
    case 'request_put': if (op.request_put) return { type: 'put', put: putFromWire(op.request_put) }; break;
    case 'request_delete_range': if (op.request_delete_range) return { type: 'delete', delete: deleteFromWire(op.request_delete_range) }; break;
    case 'request_txn': if (op.request_txn) return { type: 'txn', txn: txnFromWire(op.request_txn) }; break;
  }
  // etcd answers an empty RequestOp with "key not found" (when it validates the txn).
  return { type: 'empty' };
}

export function txnFromWire(t: WireTxnRequest): TxnRequest {
  return {
    compare: t.compare.map(compareFromWire),
    success: t.success.map(opFromWire),
    failure: t.failure.map(opFromWire),
  };
}

/** Store responses inside a Txn -> wire ResponseOps (their headers carry only a revision, as in etcd). */
export function txnToWire(t: TxnResponse): { succeeded: boolean; responses: object[] } {
  return { succeeded: t.succeeded, responses: t.responses.map(responseOpToWire) };
}

function responseOpToWire(r: ResponseOp): object {
  switch (r.type) {
    case 'range': return { response_range: r.range };
    case 'put': return { response_put: r.put };
    case 'delete': return { response_delete_range: r.delete };
    case 'txn': return { response_txn: { header: r.txn.header, ...txnToWire(r.txn) } };
  }
}

function varintLength(n: bigint): number {
  let len = 1;
  while (n >= 0x80n) {
    n >>= 7n;
    len++;
  }
  return len;
}

/**
 * etcd limits the raft entry that carries a write (--max-request-bytes), not the gRPC message:
 * the request travels inside an InternalRaftRequest whose RequestHeader holds a request ID with
 * the member ID's low 16 bits on top. Returns the entry's bytes beyond the request itself, save
 * the request's length prefix (see raftEntrySize).
 */
export function raftEnvelopeBytes(memberId: string): number {
  const requestId = (BigInt.asUintN(16, BigInt(memberId)) << 48n) | (1n << 47n);
  const header = 1 + varintLength(requestId); // RequestHeader { ID }
  // header: field 100 tag (2 bytes) + length (1) + body; request: field tag (1 byte)
  return 2 + 1 + header + 1;
}

/** The encoded size of the raft entry for a write request of `size` bytes. */
export function raftEntrySize(envelope: number, size: number): number {
  return envelope + varintLength(BigInt(size)) + size;
}
