import type { KeyValue } from '../store/types.ts';
import { feedEvent } from './logread.ts';
import { deleteKv, EMPTY, type FeedEvent } from './types.ts';

/**
 * Copies of a request's key and value in one allocation of their own. The request's buffers are
 * views into Node's shared 8 KiB buffer pool (or a whole received frame): an event kept in the
 * ring for minutes would pin all of that memory, not just its bytes.
 */
function own(key: Buffer, value: Buffer): [Buffer, Buffer] {
  const buf = Buffer.allocUnsafeSlow(key.length + value.length);
  key.copy(buf, 0);
  value.copy(buf, key.length);
  return [buf.subarray(0, key.length), buf.subarray(key.length)];
}

/** A row this instance's writer just committed (a kv_log row). */
export interface CommittedRow {
  key: Buffer;
  value: Buffer;
  deleted: boolean;
  create_revision: number;
  mod_revision: number;
  prev_revision: number;
  version: number;
  lease: string;
  /** The key as a latin1 string, when the writer made one (shared with the ring's event). */
  keyStr?: string;
}

/**
 * The events of this instance's own commit, built from the rows its writer wrote, so the feed
 * need not read them back. An event's prev_kv is the version it replaced (prev_revision): found
 * among the batch's earlier rows, as the key's newest event still held by the ring
 * (`ringLast`), or through `versionOf` (the head cache's entries as the batch found and left
 * them, see StoreCommit). Undefined when some predecessor is in none of them: the feed then
 * reads the batch from kv_log, which has every version. A put's own key-value is a view of the
 * cache's entry when `versionOf` has it, else a copy of the request's bytes.
 */
export function localEvents(
  rows: readonly CommittedRow[],
  ringLast: (keyStr: string) => FeedEvent | undefined,
  versionOf?: (keyStr: string, revision: number) => KeyValue | undefined,
): FeedEvent[] | undefined {
  const out: FeedEvent[] = [];
  const batchLast = new Map<string, FeedEvent>();
  for (const r of rows) {
    const k = r.keyStr ?? r.key.toString('latin1');
    let prev: KeyValue | null = null;
    if (r.prev_revision > 0) {
      const before = batchLast.get(k) ?? ringLast(k);
      if (before && before.revision === r.prev_revision && before.event.type === 0) prev = before.event.kv;
      else {
        prev = versionOf?.(k, r.prev_revision) ?? null;
        if (!prev) return undefined;
      }
    }
    let kv: KeyValue | undefined;
    // A delete's key can be its predecessor's (already owned); a put's key-value the cache's.
    if (r.deleted) kv = deleteKv(prev ? prev.key : own(r.key, EMPTY)[0], r.mod_revision);
    else kv = versionOf?.(k, r.mod_revision);
    if (!kv) {
      const [key, value] = own(r.key, r.value);
      kv = { key, create_revision: r.create_revision, mod_revision: r.mod_revision, version: r.version, value, lease: r.lease };
    }
    const e = feedEvent(r.deleted, kv, prev, k);
    batchLast.set(k, e);
    out.push(e);
  }
  return out;
}
