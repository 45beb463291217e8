import { BatchApplier, collect, newReadSet, type Entry, type Mutation, type MutationResult } from './apply.ts';
import { isStoreError, type StoreError } from './errors.ts';
import type { KeyMeta } from './keyindex.ts';
import { kindOf } from './kind.ts';
import { isSingleKey } from './rangeview.ts';
import type { KeyValue, PutRequest, RequestOp, ResponseOp, TxnRequest } from './types.ts';

/**
 * Evaluating a batch on the key index instead of the database. The index has every live key's
 * metadata but no values, so a batch qualifies when it only touches single keys, compares no
 * values and writes no value it has not been given. Values its answers show (a failed
 * compare-and-swap's range, prev_kv) are left as placeholders, read by pgetcd_write in the
 * same call and filled in afterwards (fill()). Pure: no I/O.
 */

/** Stands for a value the index does not have; found by identity in the results. */
const UNKNOWN = Buffer.alloc(0);

export interface Speculation {
  applier: BatchApplier;
  results: Array<MutationResult | StoreError>;
  /** Leases the written keys are attached to: they must still exist when the batch commits. */
  leases: string[];
  /** Keys whose stored values the answers show, and the answers' placeholders for them. */
  reads: Buffer[];
  holes: KeyValue[];
}

/**
 * The batch evaluated at `revision` with `lookup` as the state of every key; undefined when it
 * does not qualify or writes nothing (a batch that writes nothing is answered by the reading
 * path, which also proves the revision is current).
 */
export function speculate(ms: Mutation[], revision: number, lookup: (k: string) => KeyMeta | Entry | undefined): Speculation | undefined {
  if (!ms.every(qualifies)) return undefined;
  const rs = newReadSet();
  for (const m of ms) collect(rs, m);
  const live = new Map<string, Entry>();
  for (const [k, p] of rs.points) {
    const e = lookup(k);
    if (!e) continue;
    live.set(k, 'key' in e
      ? e
      : { key: p.key, create_revision: e.create_revision, mod_revision: e.mod_revision, version: e.version, lease: e.lease, value: UNKNOWN, kind: kindOf(p.key) });
  }
  // Every lease named is taken to exist; pgetcd_write checks the ones actually used.
  const applier = new BatchApplier(live, new Set(rs.leases), revision, 0, new Map());
  const results: Array<MutationResult | StoreError> = [];
  for (const m of ms) {
    try {
      results.push(applier.apply(m));
    } catch (e) {
      if (!isStoreError(e)) throw e;
      results.push(e);
    }
  }
  if (applier.logRows.length === 0) return undefined;
  if (applier.logRows.some((r) => r.value === UNKNOWN)) return undefined;
  const holes: KeyValue[] = [];
  const add = (kv: KeyValue | null | undefined): void => { if (kv?.value === UNKNOWN) holes.push(kv); };
  for (let i = 0; i < ms.length; i++) {
    const r = results[i]!;
    if (!isStoreError(r)) gather(ms[i]!, r, add);
  }
  const reads = new Map<string, Buffer>();
  for (const kv of holes) reads.set(kv.key.toString('latin1'), kv.key);
  const leases = new Set<string>();
  for (const r of applier.logRows) if (!r.deleted && r.lease !== '0') leases.add(r.lease);
  return { applier, results, leases: [...leases], reads: [...reads.values()], holes };
}

/** Puts the values read by pgetcd_write (in the order of `reads`) into the answers. */
export function fill(s: Pick<Speculation, 'reads' | 'holes'>, values: Buffer[]): void {
  if (s.holes.length === 0) return;
  const byKey = new Map<string, Buffer>();
  s.reads.forEach((k, i) => byKey.set(k.toString('latin1'), values[i]!));
  for (const kv of s.holes) kv.value = byKey.get(kv.key.toString('latin1'))!;
}

function qualifies(m: Mutation): boolean {
  switch (m.type) {
    case 'put': return putQualifies(m.put);
    case 'delete': return isSingleKey(m.delete.range_end);
    case 'txn': return txnQualifies(m.txn);
    default: return false;
  }
}

function putQualifies(p: PutRequest): boolean {
  return !p.ignore_value;
}

function txnQualifies(t: TxnRequest): boolean {
  return t.compare.every((c) => isSingleKey(c.range_end) && c.target !== 3) && t.success.every(opQualifies) && t.failure.every(opQualifies);
}

function opQualifies(op: RequestOp): boolean {
  switch (op.type) {
    case 'range': return isSingleKey(op.range.range_end) && op.range.revision === 0;
    case 'put': return putQualifies(op.put);
    case 'delete': return isSingleKey(op.delete.range_end);
    case 'txn': return txnQualifies(op.txn);
    case 'empty': return true;
  }
}

type Add = (kv: KeyValue | null | undefined) => void;

function gather(m: Mutation, r: MutationResult, add: Add): void {
  switch (m.type) {
    case 'put': if ('prev_kv' in r) add(r.prev_kv); break;
    case 'delete': if ('prev_kvs' in r) r.prev_kvs.forEach(add); break;
    case 'txn': if ('responses' in r) r.responses.forEach((x) => gatherResponse(x, add)); break;
    default: break;
  }
}

function gatherResponse(r: ResponseOp, add: Add): void {
  switch (r.type) {
    case 'range': r.range.kvs.forEach(add); break;
    case 'put': add(r.put.prev_kv); break;
    case 'delete': r.delete.prev_kvs.forEach(add); break;
    case 'txn': r.txn.responses.forEach((x) => gatherResponse(x, add)); break;
  }
}
