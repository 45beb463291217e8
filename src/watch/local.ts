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
}

/**
 * The events of this instance's own commit, built from the rows its writer wrote, so the feed
 * need not read them back. An event's prev_kv is the version it replaced (prev_revision): found
 * among the batch's earlier rows or as the key's newest event still held by the ring
 * (`ringLast`). Undefined when some predecessor is in neither: the feed then reads the batch
 * from kv_log, which has every version.
 */
export function localEvents(rows: readonly CommittedRow[], ringLast: (keyStr: string) => FeedEvent | undefined): FeedEvent[] | undefined {
  const out: FeedEvent[] = [];
  const batchLast = new Map<string, FeedEvent>();
  for (const r of rows) {
    const [key, value] = own(r.key, r.deleted ? EMPTY : r.value);
    const kv: KeyValue = r.deleted
      ? deleteKv(key, r.mod_revision)
      : { key, create_revision: r.create_revision, mod_revision: r.mod_revision, version: r.version, value, lease: r.lease };
    let prev: KeyValue | null = null;
    if (r.prev_revision > 0) {
      const k = r.key.toString('latin1');
      const before = batchLast.get(k) ?? ringLast(k);
      if (!before || before.revision !== r.prev_revision || before.event.type !== 0) return undefined;
      prev = before.event.kv;
    }
    const e = feedEvent(r.deleted, kv, prev);
    batchLast.set(e.keyStr, e);
    out.push(e);
  }
  return out;
}
