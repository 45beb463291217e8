import { StoreError } from './errors.ts';
import { kindOf } from './kind.ts';
import { compareRange, finishRange, inRange, isFromKey, isSingleKey } from './rangeview.ts';
import type {
  CompactResponse, DeleteRangeRequest, DeleteRangeResponse, KeyValue, LeaseGrantResult, LeaseRevokeResult,
  PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse,
} from './types.ts';

/**
 * Every mutation goes through the writer as one of these, so revisions, leases and compaction
 * bookkeeping share one ordered path.
 */
export type Mutation =
  | { type: 'put'; put: PutRequest }
  | { type: 'delete'; delete: DeleteRangeRequest }
  | { type: 'txn'; txn: TxnRequest }
  | { type: 'compact'; revision: number }
  | { type: 'leaseGrant'; id: string; ttl: number }
  | { type: 'leaseRevoke'; id: string };

export interface MutationResults {
  put: PutResponse;
  delete: DeleteRangeResponse;
  txn: TxnResponse;
  compact: CompactResponse;
  leaseGrant: LeaseGrantResult;
  leaseRevoke: LeaseRevokeResult;
}

export type MutationResult = MutationResults[keyof MutationResults];

/** A key's live version plus the partition it lives in. */
export interface Entry extends KeyValue {
  kind: string;
}

export interface Tombstone {
  deleted: true;
  key: Buffer;
  kind: string;
}

export function isTombstone(e: Entry | Tombstone): e is Tombstone {
  return 'deleted' in e;
}

export interface LogRow {
  /** The key's last row in the batch: its state goes to kv_current. */
  final: boolean;
  mod_revision: number;
  sub: number;
  create_revision: number;
  prev_revision: number;
  version: number;
  lease: string;
  deleted: boolean;
  kind: string;
  key: Buffer;
  value: Buffer;
  /** `key` as a latin1 string: handed on to the key index, the head cache and the watch ring. */
  keyStr: string;
}

/**
 * What a batch must read before it can evaluate: keys, ranges and leases it may touch. Values
 * are read only where a request can observe them (prev_kv, ignore_value, VALUE compares,
 * ranges inside a Txn); a plain Put replaces the value without reading it.
 */
export interface ReadSet {
  /** Single keys, and whether their value is needed. */
  points: Map<string, { key: Buffer; value: boolean }>;
  ranges: Array<{ key: Buffer; end: Buffer; value: boolean }>; // end empty = to the end of the key space
  leases: Set<string>;
  revokes: Set<string>;
  historical: RangeRequest[];
}

export function newReadSet(): ReadSet {
  return { points: new Map(), ranges: [], leases: new Set(), revokes: new Set(), historical: [] };
}

function addRange(rs: ReadSet, key: Buffer, rangeEnd: Buffer, value: boolean): void {
  if (isSingleKey(rangeEnd)) {
    const k = key.toString('latin1');
    const p = rs.points.get(k);
    if (p) p.value ||= value;
    else rs.points.set(k, { key, value });
  } else {
    rs.ranges.push({ key, end: isFromKey(rangeEnd) ? Buffer.alloc(0) : rangeEnd, value });
  }
}

function collectOps(rs: ReadSet, ops: RequestOp[]): void {
  for (const op of ops) {
    switch (op.type) {
      case 'range':
        if (op.range.revision > 0) rs.historical.push(op.range);
        else addRange(rs, op.range.key, op.range.range_end, rangeNeedsValues(op.range));
        break;
      case 'put':
        addRange(rs, op.put.key, Buffer.alloc(0), op.put.prev_kv || op.put.ignore_value);
        if (op.put.lease !== '0') rs.leases.add(op.put.lease);
        break;
      case 'delete':
        addRange(rs, op.delete.key, op.delete.range_end, op.delete.prev_kv);
        break;
      case 'txn':
        collectTxn(rs, op.txn);
        break;
    }
  }
}

/** A keys_only range still orders by value when asked to (sort_target VALUE). */
function rangeNeedsValues(r: RangeRequest): boolean {
  return !r.count_only && (!r.keys_only || r.sort_target === 4);
}

function collectTxn(rs: ReadSet, t: TxnRequest): void {
  for (const c of t.compare) addRange(rs, c.key, c.range_end, c.target === 3);
  collectOps(rs, t.success);
  collectOps(rs, t.failure);
}

export function collect(rs: ReadSet, m: Mutation): void {
  switch (m.type) {
    case 'put': collectOps(rs, [{ type: 'put', put: m.put }]); break;
    case 'delete': collectOps(rs, [{ type: 'delete', delete: m.delete }]); break;
    case 'txn': collectTxn(rs, m.txn); break;
    case 'compact': break;
    case 'leaseGrant': rs.leases.add(m.id); break;
    case 'leaseRevoke': rs.leases.add(m.id); rs.revokes.add(m.id); break;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Evaluates a batch of mutations in arrival order against the state read at the start of the
 * batch; each mutation sees the effects of the ones before it. Produces the responses and the
 * rows to write. Pure: no I/O.
 */
export class BatchApplier {
  readonly logRows: LogRow[] = [];
  /** Final kv_current state of every key the batch changed: its live Entry, or a Tombstone. */
  readonly current = new Map<string, Entry | Tombstone>();
  readonly leaseInserts: Array<{ id: string; ttl: number }> = [];
  readonly leaseDeletes: string[] = [];
  compactChanged = false;

  private sortedCache: Entry[] | undefined;

  /** Marks each key's last row, whose state kv_current must end up with. */
  markFinal(): void {
    const seen = new Set<string>();
    for (let i = this.logRows.length - 1; i >= 0; i--) {
      const r = this.logRows[i]!;
      const k = r.keyStr;
      if (!seen.has(k)) {
        seen.add(k);
        r.final = true;
      }
    }
  }

  constructor(
    private readonly live: Map<string, Entry>,
    private readonly leases: Set<string>,
    public revision: number,
    public compactRevision: number,
    private readonly historical: Map<RangeRequest, RangeResponse | StoreError>,
  ) {}

  apply(m: Mutation): MutationResult {
    switch (m.type) {
      case 'put': return this.applyPutRequest(m.put);
      case 'delete': return this.applyDeleteRequest(m.delete);
      case 'txn': return this.applyTxnRequest(m.txn);
      case 'compact': return this.applyCompact(m.revision);
      case 'leaseGrant': return this.applyLeaseGrant(m.id, m.ttl);
      case 'leaseRevoke': return this.applyLeaseRevoke(m.id);
    }
  }

  // --- top-level requests -------------------------------------------------------------

  private applyPutRequest(req: PutRequest): PutResponse {
    this.checkPut(req, true);
    const w = new WriteCtx(this.revision);
    const resp = this.put(w, req);
    this.finish(w);
    return resp;
  }

  private applyDeleteRequest(req: DeleteRangeRequest): DeleteRangeResponse {
    const w = new WriteCtx(this.revision);
    const resp = this.deleteRange(w, req);
    this.finish(w);
    return resp;
  }

  private applyTxnRequest(req: TxnRequest): TxnResponse {
    const path: boolean[] = [];
    this.comparePath(req, path);
    this.checkTxn(req, path);
    const w = new WriteCtx(this.revision);
    const resp = this.txn(w, req, path, { i: 0 });
    this.finish(w);
    resp.header.revision = w.changes > 0 ? w.rev + 1 : w.rev;
    return resp;
  }

  private applyCompact(revision: number): CompactResponse {
    // etcd starts with compact revision -1, so compacting a never-compacted store at 0 succeeds
    // (as a no-op here, where "never compacted" is stored as 0).
    if (revision <= this.compactRevision && !(revision === 0 && this.compactRevision === 0)) throw new StoreError('Compacted');
    if (revision > this.revision) throw new StoreError('FutureRev');
    this.compactRevision = revision;
    this.compactChanged = true;
    return { header: { revision: this.revision } };
  }

  private applyLeaseGrant(id: string, ttl: number): LeaseGrantResult {
    if (this.leases.has(id)) throw new StoreError('LeaseExist');
    this.leases.add(id);
    this.leaseInserts.push({ id, ttl });
    return { header: { revision: this.revision }, id, ttl };
  }

  private applyLeaseRevoke(id: string): LeaseRevokeResult {
    if (!this.leases.has(id)) throw new StoreError('LeaseNotFound');
    const w = new WriteCtx(this.revision);
    // etcd deletes a lease's keys in key order, all in one revision.
    for (const e of this.sorted()) {
      if (e.lease === id) this.deleteOne(w, e);
    }
    this.finish(w);
    this.leases.delete(id);
    this.leaseDeletes.push(id);
    const idx = this.leaseInserts.findIndex((l) => l.id === id);
    if (idx >= 0) this.leaseInserts.splice(idx, 1);
    return { header: { revision: this.revision } };
  }

  // --- operations inside one write (a request or a txn) ------------------------------

  private put(w: WriteCtx, req: PutRequest): PutResponse {
    const k = req.key.toString('latin1');
    const prev = this.live.get(k);
    const rev = w.rev + 1;
    const entry: Entry = {
      key: req.key,
      create_revision: prev ? prev.create_revision : rev,
      mod_revision: rev,
      version: prev ? prev.version + 1 : 1,
      value: req.ignore_value && prev ? prev.value : req.value,
      lease: req.ignore_lease && prev ? prev.lease : req.lease,
      kind: prev ? prev.kind : kindOf(req.key),
    };
    this.logRows.push({
      final: false, mod_revision: rev, sub: w.changes++, create_revision: entry.create_revision,
      prev_revision: prev ? prev.mod_revision : 0, version: entry.version, lease: entry.lease,
      deleted: false, kind: entry.kind, key: entry.key, value: entry.value, keyStr: k,
    });
    if (!prev) this.sortedCache = undefined;
    else if (this.sortedCache) this.sortedCache[this.sortedIndex(req.key)] = entry;
    this.live.set(k, entry);
    this.current.set(k, entry);
    return { header: { revision: rev }, prev_kv: req.prev_kv && prev ? toKV(prev) : null };
  }

  private deleteRange(w: WriteCtx, req: DeleteRangeRequest): DeleteRangeResponse {
    const victims = this.inRange(req.key, req.range_end);
    const prevKvs: KeyValue[] = [];
    for (const e of victims) {
      this.deleteOne(w, e);
      if (req.prev_kv) prevKvs.push(toKV(e));
    }
    const rev = victims.length > 0 || w.changes > 0 ? w.rev + 1 : w.rev;
    return { header: { revision: rev }, deleted: victims.length, prev_kvs: prevKvs };
  }

  private deleteOne(w: WriteCtx, e: Entry): void {
    const rev = w.rev + 1;
    const k = e.key.toString('latin1');
    this.logRows.push({
      final: false, mod_revision: rev, sub: w.changes++, create_revision: 0, prev_revision: e.mod_revision,
      version: 0, lease: '0', deleted: true, kind: e.kind, key: e.key, value: EMPTY, keyStr: k,
    });
    this.live.delete(k);
    this.sortedCache = undefined;
    this.current.set(k, { deleted: true, key: e.key, kind: e.kind });
  }

  private range(w: WriteCtx, req: RangeRequest): RangeResponse {
    const rev = w.changes > 0 ? w.rev + 1 : w.rev;
    if (req.revision > 0) {
      const r = this.historical.get(req);
      if (r instanceof StoreError) throw r;
      if (!r) throw new StoreError('Unavailable', 'historical range was not prefetched');
      return { ...r, header: { revision: rev } };
    }
    return finishRange(req, this.inRange(req.key, req.range_end).map(toKV), rev);
  }

  private txn(w: WriteCtx, req: TxnRequest, path: boolean[], at: { i: number }): TxnResponse {
    const succeeded = path[at.i++]!;
    const ops = succeeded ? req.success : req.failure;
    const responses: ResponseOp[] = [];
    for (const op of ops) {
      switch (op.type) {
        case 'range': responses.push({ type: 'range', range: this.range(w, op.range) }); break;
        case 'put': responses.push({ type: 'put', put: this.put(w, op.put) }); break;
        case 'delete': responses.push({ type: 'delete', delete: this.deleteRange(w, op.delete) }); break;
        case 'txn': {
          // etcd leaves a nested txn's header empty.
          responses.push({ type: 'txn', txn: this.txn(w, op.txn, path, at) });
          break;
        }
      }
    }
    return { header: { revision: 0 }, succeeded, responses };
  }

  /** etcd evaluates every compare of a txn, nested ones included, on the state before it runs. */
  private comparePath(req: TxnRequest, path: boolean[]): void {
    const ok = req.compare.every((c) => compareRange(c, this.inRange(c.key, c.range_end)));
    path.push(ok);
    for (const op of ok ? req.success : req.failure) if (op.type === 'txn') this.comparePath(op.txn, path);
  }

  /**
   * etcd's checkRequests: errors that fail the whole txn before anything is written. etcd checks
   * every put on the path first, then every range.
   */
  private checkTxn(req: TxnRequest, path: boolean[]): void {
    walkPath(req, path, (op) => { if (op.type === 'put') this.checkPut(op.put); });
    walkPath(req, path, (op) => {
      if (op.type === 'range' && op.range.revision > 0) {
        if (op.range.revision > this.revision) throw new StoreError('FutureRev');
        if (op.range.revision < this.compactRevision) throw new StoreError('Compacted');
      }
    });
    this.checkWritesOnce(req, path);
  }

  /**
   * kv_log holds one row per key and revision. etcd's syntactic duplicate check lets a few txns
   * write a key twice in one revision (a from-key delete that catches a key put in the same txn,
   * or a put in one nested txn and a delete of it in a later sibling); etcd stores both. pgetcd
   * rejects those as a duplicate key, before anything is written.
   */
  private checkWritesOnce(req: TxnRequest, path: boolean[]): void {
    const touched = new Set<string>();
    const puts: Buffer[] = [];
    walkPath(req, path, (op) => {
      if (op.type === 'put') {
        const k = op.put.key.toString('latin1');
        if (touched.has(k)) throw new StoreError('DuplicateKey', 'a key written twice in one revision');
        touched.add(k);
        puts.push(op.put.key);
      } else if (op.type === 'delete') {
        const { key, range_end } = op.delete;
        for (const p of puts) {
          if (inRange(p, key, range_end)) throw new StoreError('DuplicateKey', 'a key put and deleted in one revision');
        }
        for (const e of this.inRange(key, range_end)) {
          const k = e.key.toString('latin1');
          touched.add(k);
        }
      }
    });
  }

  /**
   * etcd's put checks. Inside a txn (checkRequestPut) the key comes before the lease; a Put on
   * its own looks the lease up first, before it opens the write (etcd 3.4 applierV3backend.Put).
   */
  private checkPut(req: PutRequest, leaseFirst = false): void {
    if (leaseFirst) this.checkLease(req);
    if ((req.ignore_value || req.ignore_lease) && !this.live.has(req.key.toString('latin1'))) {
      throw new StoreError('KeyNotFound');
    }
    this.checkLease(req);
  }

  private checkLease(req: PutRequest): void {
    if (req.lease !== '0' && !this.leases.has(req.lease)) throw new StoreError('LeaseNotFound');
  }

  private finish(w: WriteCtx): void {
    if (w.changes > 0) this.revision = w.rev + 1;
  }

  // --- in-memory view of the keys the batch read ---------------------------------------

  private sorted(): Entry[] {
    if (!this.sortedCache) {
      this.sortedCache = [...this.live.values()].sort((a, b) => Buffer.compare(a.key, b.key));
    }
    return this.sortedCache;
  }

  /** Position of a live key in the sorted cache (the key must be in it). */
  private sortedIndex(key: Buffer): number {
    const a = this.sortedCache!;
    let lo = 0;
    let hi = a.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (Buffer.compare(a[mid]!.key, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private inRange(key: Buffer, rangeEnd: Buffer): Entry[] {
    if (isSingleKey(rangeEnd)) {
      const e = this.live.get(key.toString('latin1'));
      return e ? [e] : [];
    }
    return this.sorted().filter((e) => inRange(e.key, key, rangeEnd));
  }
}

/** Calls f on every op of the branches a txn's compare path takes, nested txns included, in order. */
function walkPath(req: TxnRequest, path: boolean[], f: (op: RequestOp) => void, at = { i: 0 }): void {
  for (const op of path[at.i++] ? req.success : req.failure) {
    if (op.type === 'txn') walkPath(op.txn, path, f, at);
    else f(op);
  }
}

/** One write request's view: the revision it started at and how many rows it has written. */
class WriteCtx {
  changes = 0;
  constructor(readonly rev: number) {}
}

export function toKV(e: Entry): KeyValue {
  return {
    key: e.key, create_revision: e.create_revision, mod_revision: e.mod_revision,
    version: e.version, value: e.value, lease: e.lease,
  };
}
