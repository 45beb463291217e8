import { packedEntry } from './packed.ts';
import { isSingleKey } from './rangeview.ts';
import type { PackedRangeResponse, RangeRequest } from './types.ts';

/**
 * The counts of the next pages of paginated lists. etcd answers every Range with the count of
 * its whole [key, range_end) at its revision; Kubernetes lists page by page (limit 500), every
 * later page from the previous page's last key + "\0" at the first page's revision R. The count
 * of a range at a past revision never changes, and the next page's range holds exactly this
 * page's range minus the keys it returned (they are its first keys in key order), so the next
 * page's count is this count minus this page's keys: no scan of the rest of the range per page.
 * Bounded: the oldest entries go first.
 */
export class PageCounts {
  private readonly counts = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** The count of this request's range at its revision, if an earlier page told it. */
  get(req: RangeRequest): number | undefined {
    if (req.revision <= 0) return undefined;
    return this.counts.get(entry(req.revision, req.key, req.range_end));
  }

  /** Forgets every count (the history they were counted in is gone: see regression.ts). */
  clear(): void {
    this.counts.clear();
  }

  /** Learns the next page's count from an answer (when it is a key-ordered page with more). */
  learn(req: RangeRequest, r: PackedRangeResponse): void {
    if (!r.more || r.kvs === 0 || req.limit <= 0 || !keyOrdered(req) || isSingleKey(req.range_end)) return;
    const lastKey = packedKey(r.packed, r.kvs - 1);
    const revision = req.revision > 0 ? req.revision : r.header.revision;
    const next = Buffer.concat([lastKey, Buffer.from([0])]);
    this.counts.set(entry(revision, next, req.range_end), r.count - r.kvs);
    if (this.counts.size > this.max) this.counts.delete(this.counts.keys().next().value!);
  }
}

/** The key of the i-th entry of a packed answer. */
function packedKey(p: Buffer, i: number): Buffer {
  let e = packedEntry(p, 0);
  for (let n = 0; n < i; n++) e = packedEntry(p, e.end);
  return p.subarray(e.keyAt, e.keyAt + e.keyLen);
}

function entry(revision: number, key: Buffer, end: Buffer): string {
  return `${revision}/${key.toString('hex')}/${end.toString('hex')}`;
}

/** Pages in key order whose keys are the range's first keys: no filters, ascending by key. */
function keyOrdered(req: RangeRequest): boolean {
  return req.sort_target === 0 && req.sort_order !== 2 && !req.count_only &&
    req.min_mod_revision === 0 && req.max_mod_revision === 0 && req.min_create_revision === 0 && req.max_create_revision === 0;
}
