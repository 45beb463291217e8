import type { KeyValue, StoreEvent } from '../store/types.ts';

/** mvccpb.Event.EventType. */
export const PUT = 0;
export const DELETE = 1;

/** etcd's WatchCreateRequest filters. */
export const FILTER_NOPUT = 0;
export const FILTER_NODELETE = 1;

/**
 * One change from kv_log, as every watcher of this instance sees it. `event` carries prev_kv
 * (for watchers that asked for it); `bare` is the same event without it. Both are shared by
 * every watcher that receives the event, so a fan-out allocates nothing per watcher.
 * `keyStr` is the key as a latin1 string (one char per byte: string order = byte order).
 */
export interface FeedEvent {
  revision: number;
  keyStr: string;
  event: StoreEvent;
  bare: StoreEvent;
  /** Encoded size of `event` / `bare` as a repeated field of WatchResponse (tag + length + body). */
  size: number;
  bareSize: number;
}

/**
 * The key range of a watcher, in etcd's terms: `end` null = the single key, '' = every key from
 * `key` on (range_end "\0"), otherwise [key, end). Strings are latin1 (byte order).
 */
export interface KeyRange {
  key: string;
  end: string | null;
}

export function inKeyRange(r: KeyRange, k: string): boolean {
  if (r.end === null) return k === r.key;
  return k >= r.key && (r.end === '' || k < r.end);
}

/** A batch of kv_log read by the feed: every event with revision in (from, to], in order. */
export interface LogBatch {
  from: number;
  to: number;
  /** meta.revision and meta.compact_revision in the same snapshot. */
  storeRevision: number;
  compactRevision: number;
  events: FeedEvent[];
}

export const EMPTY = Buffer.alloc(0);

export function deleteKv(key: Buffer, revision: number): KeyValue {
  // etcd's delete event carries only the key and the delete's revision.
  return { key, create_revision: 0, mod_revision: revision, version: 0, value: EMPTY, lease: '0' };
}
