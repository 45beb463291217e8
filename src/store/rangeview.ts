import type { Compare, KeyValue, RangeRequest, RangeResponse } from './types.ts';

/**
 * etcd's Range rules applied to an in-memory list of the keys in range (sorted by key): the
 * writer uses this for ranges and compares inside a Txn. The SQL reader implements the same
 * rules in SQL; tests pin both against each other through real clients.
 */

/** True when range_end selects a single key. */
export function isSingleKey(rangeEnd: Buffer): boolean {
  return rangeEnd.length === 0;
}

/** True when range_end is "\0": every key >= key. */
export function isFromKey(rangeEnd: Buffer): boolean {
  return rangeEnd.length === 1 && rangeEnd[0] === 0;
}

export function inRange(k: Buffer, key: Buffer, rangeEnd: Buffer): boolean {
  if (isSingleKey(rangeEnd)) return k.equals(key);
  if (Buffer.compare(k, key) < 0) return false;
  return isFromKey(rangeEnd) || Buffer.compare(k, rangeEnd) < 0;
}

function sortValue(kv: KeyValue, target: number): number | Buffer {
  switch (target) {
    case 1: return kv.version;
    case 2: return kv.create_revision;
    case 3: return kv.mod_revision;
    case 4: return kv.value;
    default: return kv.key;
  }
}

function cmp(a: number | Buffer, b: number | Buffer): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return Buffer.compare(a as Buffer, b as Buffer);
}

/**
 * etcd fetches only limit+1 keys (in key order) before sorting when the request sets no sort
 * order and no revision filter: a non-KEY target with order NONE then sorts just that page.
 */
export function limitsBeforeSort(req: RangeRequest): boolean {
  return req.limit > 0 && req.sort_order === 0 && req.sort_target !== 0 &&
    req.min_mod_revision === 0 && req.max_mod_revision === 0 &&
    req.min_create_revision === 0 && req.max_create_revision === 0;
}

export function finishRange(req: RangeRequest, inRangeSorted: KeyValue[], revision: number): RangeResponse {
  const count = inRangeSorted.length;
  if (req.count_only) return { header: { revision }, kvs: [], more: false, count };
  const candidates = limitsBeforeSort(req) ? inRangeSorted.slice(0, req.limit + 1) : inRangeSorted;
  let kvs = candidates.filter((kv) =>
    (req.min_mod_revision === 0 || kv.mod_revision >= req.min_mod_revision) &&
    (req.max_mod_revision === 0 || kv.mod_revision <= req.max_mod_revision) &&
    (req.min_create_revision === 0 || kv.create_revision >= req.min_create_revision) &&
    (req.max_create_revision === 0 || kv.create_revision <= req.max_create_revision));
  let order = req.sort_order;
  // etcd: a non-key target with no order sorts ascending; key ascending is already the order.
  if (req.sort_target !== 0 && order === 0) order = 1;
  else if (req.sort_target === 0 && order === 1) order = 0;
  if (order !== 0) {
    const dir = order === 2 ? -1 : 1;
    // Stable: ties keep ascending key order, as etcd's sort does for them.
    kvs = kvs
      .map((kv, i) => ({ kv, i }))
      .sort((a, b) => dir * cmp(sortValue(a.kv, req.sort_target), sortValue(b.kv, req.sort_target)) || a.i - b.i)
      .map((x) => x.kv);
  }
  let more = false;
  if (req.limit > 0 && kvs.length > req.limit) {
    kvs = kvs.slice(0, req.limit);
    more = true;
  }
  if (req.keys_only) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY }));
  return { header: { revision }, kvs, more, count };
}

const EMPTY = Buffer.alloc(0);

/** etcd's compareKV for one key (a missing key compares as the zero KeyValue). */
export function compareOne(c: Compare, kv: KeyValue | undefined): boolean {
  let result: number;
  switch (c.target) {
    case 3: result = Buffer.compare(kv?.value ?? EMPTY, c.value); break;
    case 1: result = Math.sign((kv?.create_revision ?? 0) - c.create_revision); break;
    case 2: result = Math.sign((kv?.mod_revision ?? 0) - c.mod_revision); break;
    case 0: result = Math.sign((kv?.version ?? 0) - c.version); break;
    case 4: {
      const a = BigInt(kv?.lease ?? '0');
      const b = BigInt(c.lease);
      result = a < b ? -1 : a > b ? 1 : 0;
      break;
    }
    default: result = 0; // etcd: an unknown target compares as equal
  }
  switch (c.result) {
    case 0: return result === 0;
    case 3: return result !== 0;
    case 1: return result > 0;
    case 2: return result < 0;
    default: return true;
  }
}

/** etcd's applyCompare: every key in range must satisfy it; VALUE on no keys fails. */
export function compareRange(c: Compare, kvs: KeyValue[]): boolean {
  if (kvs.length === 0) return c.target === 3 ? false : compareOne(c, undefined);
  return kvs.every((kv) => compareOne(c, kv));
}
