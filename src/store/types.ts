/**
 * The store's view of etcd's data model. Field names are etcd's (mvccpb/etcdserverpb), so a
 * reader who knows etcd recognises them; nothing here knows about gRPC or protobuf.
 * Revisions are JS numbers (far below 2^53); lease IDs use all of int64 and travel as decimal
 * strings ('0' = no lease).
 */
export interface KeyValue {
  key: Buffer;
  create_revision: number;
  mod_revision: number;
  version: number;
  value: Buffer;
  lease: string;
}

export const enum SortOrder { NONE = 0, ASCEND = 1, DESCEND = 2 }
export const enum SortTarget { KEY = 0, VERSION = 1, CREATE = 2, MOD = 3, VALUE = 4 }

export interface Header {
  revision: number;
}

export interface RangeRequest {
  key: Buffer;
  range_end: Buffer;
  limit: number;
  revision: number;
  sort_order: number;
  sort_target: number;
  serializable: boolean;
  keys_only: boolean;
  count_only: boolean;
  min_mod_revision: number;
  max_mod_revision: number;
  min_create_revision: number;
  max_create_revision: number;
}

export interface RangeResponse {
  header: Header;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

/**
 * A Range answer whose key-values stay in the packed form PostgreSQL built them in, for the
 * Range RPC to copy straight into its response (no object per key). Per key, in answer order:
 * create_revision, mod_revision, version and lease as big-endian int64, then a big-endian
 * int32 length and the key, then an int32 length and the value (0 with keys_only). `kvs` is
 * how many keys of `packed` belong to the answer (a packed page may hold one more, the key
 * that told there are more).
 */
export interface PackedRangeResponse {
  header: Header;
  packed: Buffer;
  /**
   * Set instead of `packed` (then empty) by the head cache: one buffer per key-value, each the
   * key-value's mvccpb.KeyValue encoding (kvbytes.ts), ready to be copied into a response.
   */
  entries?: readonly Buffer[];
  kvs: number;
  more: boolean;
  count: number;
}

export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease: string;
  prev_kv: boolean;
  ignore_value: boolean;
  ignore_lease: boolean;
}

export interface PutResponse {
  header: Header;
  prev_kv: KeyValue | null;
}

export interface DeleteRangeRequest {
  key: Buffer;
  range_end: Buffer;
  prev_kv: boolean;
}

export interface DeleteRangeResponse {
  header: Header;
  deleted: number;
  prev_kvs: KeyValue[];
}

export const enum CompareResult { EQUAL = 0, GREATER = 1, LESS = 2, NOT_EQUAL = 3 }
export const enum CompareTarget { VERSION = 0, CREATE = 1, MOD = 2, VALUE = 3, LEASE = 4 }

export interface Compare {
  result: number;
  target: number;
  key: Buffer;
  range_end: Buffer;
  /** The operand for the target; absent means etcd's zero value. */
  version: number;
  create_revision: number;
  mod_revision: number;
  value: Buffer;
  lease: string;
}

export type RequestOp =
  | { type: 'range'; range: RangeRequest }
  | { type: 'put'; put: PutRequest }
  | { type: 'delete'; delete: DeleteRangeRequest }
  | { type: 'txn'; txn: TxnRequest }
  /** A RequestOp with no request set: etcd rejects the whole txn ("key not found"). */
  | { type: 'empty' };

export type ResponseOp =
  | { type: 'range'; range: RangeResponse }
  | { type: 'put'; put: PutResponse }
  | { type: 'delete'; delete: DeleteRangeResponse }
  | { type: 'txn'; txn: TxnResponse };

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  header: Header;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactResponse {
  header: Header;
}

export interface LeaseGrantResult {
  header: Header;
  id: string;
  ttl: number;
}

export interface LeaseRevokeResult {
  header: Header;
}

/** An event as watchers see it: one row of kv_log. */
export interface StoreEvent {
  type: 0 | 1; // PUT, DELETE (mvccpb.Event.EventType)
  kv: KeyValue;
  prev_kv: KeyValue | null;
}
