import { StoreError } from './errors.ts';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from './types.ts';

/** etcd's request checks (v3rpc key.go), done before a request reaches the writer. */

/**
 * `legacySortOrder`: etcd before 3.6 ignored an unknown sort order (the answer comes in key
 * order, limit applied), so the request is rewritten to that; 3.6 refuses it. An unknown sort
 * target is refused either way (etcd before 3.6 crashed on it).
 */
export function checkRange(r: RangeRequest, legacySortOrder = false): void {
  if (r.key.length === 0) throw new StoreError('EmptyKey');
  if (!(r.sort_target >= 0 && r.sort_target <= 4)) throw new StoreError('InvalidSortOption');
  if (!(r.sort_order >= 0 && r.sort_order <= 2)) {
    if (!legacySortOrder) throw new StoreError('InvalidSortOption');
    r.sort_order = 0;
    r.sort_target = 0;
  }
}

/**
 * Longest key a Put accepts. Keys live in B-tree primary keys (kv_current, kv_log), whose
 * entries must fit in a third of a page (2704 bytes, kind and revision included); a longer key
 * would fail inside the write batch. etcd itself has no key limit below --max-request-bytes:
 * pgetcd answers such a Put with etcd's "request is too large" instead.
 */
export const MAX_KEY_BYTES = 2048;

export function checkPut(r: PutRequest): void {
  if (r.key.length === 0) throw new StoreError('EmptyKey');
  if (r.ignore_value && r.value.length !== 0) throw new StoreError('ValueProvided');
  if (r.ignore_lease && r.lease !== '0') throw new StoreError('LeaseProvided');
  if (r.key.length > MAX_KEY_BYTES) throw new StoreError('RequestTooLarge', `key of ${r.key.length} bytes`);
}

export function checkDelete(r: DeleteRangeRequest): void {
  if (r.key.length === 0) throw new StoreError('EmptyKey');
}

/** A txn whose branches hold only ranges (etcd's isTxnReadonly: a nested txn counts as a write). */
export function isTxnReadOnly(t: TxnRequest): boolean {
  const read = (op: RequestOp): boolean => op.type === 'range';
  return t.success.every(read) && t.failure.every(read);
}

export function checkTxn(r: TxnRequest, maxTxnOps: number, legacySortOrder = false): void {
  checkTxnShape(r, maxTxnOps, legacySortOrder);
  // Overlap checks come after the shape checks so a huge request cannot make them quadratic.
  checkIntervals(r.success);
  checkIntervals(r.failure);
}

function checkTxnShape(r: TxnRequest, maxTxnOps: number, legacySortOrder: boolean): void {
  const ops = Math.max(r.compare.length, r.success.length, r.failure.length);
  if (ops > maxTxnOps) throw new StoreError('TooManyOps');
  for (const c of r.compare) if (c.key.length === 0) throw new StoreError('EmptyKey');
  // As etcd: a nested txn may use only what its parent left of the budget.
  for (const op of r.success) checkOp(op, maxTxnOps - ops, legacySortOrder);
  for (const op of r.failure) checkOp(op, maxTxnOps - ops, legacySortOrder);
}

function checkOp(op: RequestOp, maxTxnOps: number, legacySortOrder: boolean): void {
  switch (op.type) {
    case 'range': return checkRange(op.range, legacySortOrder);
    case 'put': return checkPut(op.put);
    case 'delete': return checkDelete(op.delete);
    case 'txn': return checkTxnShape(op.txn, maxTxnOps, legacySortOrder);
    case 'empty': throw new StoreError('KeyNotFound');
  }
}

/** Half-open byte interval; `end` null = a single key. */
interface Interval { start: string; end: string | null }

/**
 * etcd takes a delete's range_end literally here: a from-key delete (range_end "\0") is the
 * empty interval [key, "\0") for this check, so it collides with no put.
 */
function toInterval(key: Buffer, rangeEnd: Buffer): Interval {
  const start = key.toString('latin1');
  if (rangeEnd.length === 0) return { start, end: null };
  return { start, end: rangeEnd.toString('latin1') };
}

function covers(iv: Interval, k: string): boolean {
  if (iv.end === null) return iv.start === k;
  return k >= iv.start && k < iv.end;
}

/**
 * etcd forbids a txn from writing one key twice: two puts of a key at one level, a put inside a
 * deleted range, or a put in a nested txn that collides with a put or delete at an outer level
 * (the success and failure branches of one nested txn may put the same key: only one runs).
 * Returns the puts and deletes of this level for the caller's checks.
 */
function checkIntervals(ops: RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of ops) if (op.type === 'delete') dels.push(toInterval(op.delete.key, op.delete.range_end));
  const deleted = (k: string): boolean => dels.some((iv) => covers(iv, k));

  const puts = new Set<string>();
  for (const op of ops) {
    if (op.type !== 'txn') continue;
    const then = checkIntervals(op.txn.success);
    const otherwise = checkIntervals(op.txn.failure);
    for (const k of then.puts) {
      if (puts.has(k) || deleted(k)) throw new StoreError('DuplicateKey');
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw new StoreError('DuplicateKey');
      if (deleted(k)) throw new StoreError('DuplicateKey');
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of ops) {
    if (op.type !== 'put') continue;
    const k = op.put.key.toString('latin1');
    if (puts.has(k) || deleted(k)) throw new StoreError('DuplicateKey');
    puts.add(k);
  }
  return { puts, dels };
}
