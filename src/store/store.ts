import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';
import { Compactor, type CompactionObserver } from './compactor.ts';
import { StoreError } from './errors.ts';
import { HeadCache, type HeadCacheStats } from './headcache.ts';
import { KeyIndex, type IndexChange, type IndexStats } from './keyindex.ts';
import { decodeKeyValue } from './kvbytes.ts';
import { dbCall } from './pgerrors.ts';
import { packedRangeQuery } from './reader.ts';
import { PageCounts } from './pagecounts.ts';
import { RevisionGuard } from './regression.ts';
import type { Standbys } from './standbys.ts';
import type {
  CompactResponse, DeleteRangeRequest, KeyValue, PackedRangeResponse, DeleteRangeResponse, LeaseGrantResult, LeaseRevokeResult,
  PutRequest, PutResponse, RangeRequest, TxnRequest, TxnResponse,
} from './types.ts';
import { checkDelete, checkPut, checkRange, checkTxn, isTxnReadOnly } from './validate.ts';
import { Writer, type Commit, type WriteObserver } from './writer.ts';

/**
 * A commit of this instance as the store's listeners see it. `versionOf` (when the head cache
 * applied the commit) gives a key's version at a revision without a read, when it is the
 * version the batch replaced or the one it left: its key and value are views into the cache's
 * entry, which is never modified, so they may be kept (the watch ring does, instead of a copy).
 */
export interface StoreCommit extends Commit {
  versionOf?: (keyStr: string, revision: number) => KeyValue | undefined;
}

/** The key-value in a head cache entry, if it is the version written at `revision`. */
function versionIn(entry: Buffer | null | undefined, revision: number): KeyValue | undefined {
  if (!entry) return undefined;
  const kv = decodeKeyValue(entry);
  return kv.mod_revision === revision ? kv : undefined;
}

/** Paginated lists whose next page's count is remembered (see PageCounts). */
const PAGE_COUNTS = 1024;
/**
 * How long a linearizable Range waits for the head cache to apply the store's revision before it
 * reads from PostgreSQL instead: about a commit's round trip plus the feed's read of kv_log.
 */
const CACHE_WAIT_MS = 50;

export interface StoreOptions {
  log: Logger;
  maxTxnOps: number;
  /** etcd's --max-request-bytes: a write whose encoded size is larger is "request is too large". */
  maxRequestBytes: number;
  maxBatch: number;
  maxBatchBytes: number;
  /** Opens a dedicated single-connection client for the writer (see WriterOptions.connect). */
  connect: (onClose: () => void) => Sql;
  /** false: no key index, every write batch reads from the database first. */
  keyIndex?: boolean;
  /** Bound of the head cache (live keys with values, answering Ranges); 0: no cache. */
  cacheMaxBytes?: number;
  /** etcd before 3.6: an unknown sort order is ignored instead of refused (see checkRange). */
  legacySortOrder?: boolean;
  /** Told about each write batch and compaction pass (metrics). */
  observer?: WriteObserver & CompactionObserver;
  /** Hot standbys for serializable and past-revision Ranges (--read-endpoint). */
  standbys?: Standbys;
}

/**
 * etcd's KV semantics over PostgreSQL. Reads go straight to SQL (one statement, one snapshot);
 * every mutation goes through the one group-commit writer. `bytes` is the write's encoded size
 * as etcd counts it (its raft entry): checked against maxRequestBytes after the request's own
 * checks, as etcd orders them, and used to bound batches.
 */
export class Store {
  readonly writer: Writer;
  readonly compactor: Compactor;
  /** Detects the database going back behind revisions this instance served (async failover). */
  readonly guard: RevisionGuard;
  private readonly index = new KeyIndex();
  private readonly cache: HeadCache | undefined;
  private cacheLoad: Promise<void> | undefined;
  private readonly pageCounts = new PageCounts(PAGE_COUNTS);
  private indexLoad: Promise<void> | undefined;
  private closed = false;
  private readonly commitListeners: Array<(c: StoreCommit) => void> = [];
  private readonly settleListeners: Array<() => void> = [];

  constructor(readonly sql: Sql, private readonly opts: StoreOptions) {
    this.guard = new RevisionGuard(sql, opts.log.child({ mod: 'regression' }));
    this.guard.onRegression(() => {
      // Counts, key metadata and cached values learned from the lost revisions are wrong now.
      this.pageCounts.clear();
      this.cache?.drop();
      this.index.drop();
      void this.loadIndex();
    });
    this.commitListeners.push((c) => {
      this.guard.serve(c.to);
      opts.standbys?.primaryAt(c.to);
    });
    this.writer = new Writer(sql, {
      guard: this.guard,
      log: opts.log.child({ mod: 'writer' }),
      maxBatch: opts.maxBatch,
      maxBatchBytes: opts.maxBatchBytes,
      connect: opts.connect,
      onCommit: (c) => {
        const sc = this.applyCommitToCache(c);
        for (const l of this.commitListeners) l(sc);
      },
      onSettled: () => { for (const l of this.settleListeners) l(); },
      ...(opts.keyIndex === false ? {} : { index: this.index }),
      ...(opts.observer ? { observer: opts.observer } : {}),
    });
    if (opts.cacheMaxBytes) this.cache = new HeadCache(opts.cacheMaxBytes);
    this.compactor = new Compactor(sql, opts.log.child({ mod: 'compactor' }), opts.observer);
  }

  /**
   * Loads the key index in the background (writes read from the database until it is ready).
   * Call once the change feed runs, so that every revision after the load's snapshot is
   * reported through observeLog().
   */
  loadIndex(): Promise<void> {
    this.loadCache();
    if (this.opts.keyIndex === false || this.closed) return Promise.resolve();
    this.indexLoad ??= this.index.load(this.sql)
      .then(() => this.opts.log.info(this.index.stats(), 'key index loaded'))
      .catch((err: unknown) => this.opts.log.warn({ err }, 'loading the key index failed; writes read from the database'))
      .finally(() => { this.indexLoad = undefined; });
    return this.indexLoad;
  }

  /**
   * Every committed change of revisions (from, to], in order, as the change feed reads them
   * from kv_log (from every instance). Keeps the key index current.
   */
  observeLog(from: number, to: number, changes: readonly IndexChange[]): void {
    this.opts.standbys?.primaryAt(to);
    if (this.cache) {
      this.cache.advance(from, to, changes, true);
      if (this.cache.mayLoad) this.loadCache();
    }
    if (this.opts.keyIndex === false) return;
    this.index.advance(from, to, changes, true);
    if (this.index.revision < 0 && !this.indexLoad) void this.loadIndex();
  }

  /** Somebody committed `revision` (a notification). */
  observeRevision(revision: number): void {
    this.index.saw(revision);
    this.opts.standbys?.primaryAt(revision);
  }

  /** Loads the head cache in the background (ranges read from the database until it is ready). */
  private loadCache(): void {
    const cache = this.cache;
    if (!cache || this.closed || this.cacheLoad || !cache.mayLoad) return;
    this.cacheLoad = cache.load(this.sql)
      .then(() => this.opts.log.info(cache.stats(), cache.ready ? 'head cache loaded' : 'head cache over --cache-max-bytes; ranges read from the database'))
      .catch((err: unknown) => this.opts.log.warn({ err }, 'loading the head cache failed; ranges read from the database'))
      .finally(() => { this.cacheLoad = undefined; });
  }

  cacheStats(): HeadCacheStats | undefined {
    return this.cache?.stats();
  }

  indexStats(): IndexStats {
    return this.index.stats();
  }

  /**
   * Moves the head cache over this instance's commit; when it applied, the commit carries the
   * versions the batch replaced and wrote, read from the cache's entries (see StoreCommit).
   */
  private applyCommitToCache(c: Commit): StoreCommit {
    const cache = this.cache;
    if (!cache) return c;
    const before = new Map<string, Buffer | null>();
    if (!cache.advance(c.from, c.to, c.rows, false, before)) return c;
    return {
      ...c,
      versionOf: (k, revision) => versionIn(before.get(k), revision) ?? versionIn(cache.entry(k), revision),
    };
  }

  /** Called after every local commit that created revisions (the watch hub listens here). */
  onCommit(listener: (c: StoreCommit) => void): void {
    this.commitListeners.push(listener);
  }

  /** Called whenever a write batch's commit finished (committed or failed). */
  onSettled(listener: () => void): void {
    this.settleListeners.push(listener);
  }

  /** True while a write batch's commit is in flight. */
  get writing(): boolean {
    return this.writer.committing > 0;
  }

  /** A Range, its key-values packed as PostgreSQL built them (see PackedRangeResponse). */
  async rangePacked(req: RangeRequest): Promise<PackedRangeResponse> {
    checkRange(req, this.opts.legacySortOrder);
    const floor = this.guard.served;
    const cached = this.cache?.ready ? await this.rangeFromCache(this.cache, req, floor) : undefined;
    if (cached) return cached;
    const known = this.pageCounts.get(req);
    const standby = await this.rangeFromStandby(req, known);
    if (standby) return standby;
    const r = await dbCall(() => packedRangeQuery(this.sql, req, known));
    this.guard.check(r.header.revision, floor);
    this.guard.serve(r.header.revision);
    this.opts.standbys?.primaryAt(r.header.revision);
    this.pageCounts.learn(req, r);
    return r;
  }

  /**
   * A serializable Range, or one at a past revision, from a hot standby (undefined: the primary
   * answers). A past revision R reads the same there as on the primary once the standby has
   * replayed R (commits replay whole and in revision order, meta with them); the statement checks
   * that in its own snapshot. Its header carries the standby's revision, at least R, as an etcd
   * follower's would carry its own. Such a revision is not recorded as served (RevisionGuard):
   * with synchronous replication a standby can show a commit before the primary does, and a
   * primary read just behind it is no regression.
   */
  private async rangeFromStandby(req: RangeRequest, known: number | undefined): Promise<PackedRangeResponse | undefined> {
    const standbys = this.opts.standbys;
    if (!standbys || !(req.serializable || req.revision > 0)) return undefined;
    const r = await standbys.read((sql) => dbCall(() => packedRangeQuery(sql, req, known)), (x) => x.header.revision);
    if (r) this.pageCounts.learn(req, r);
    return r;
  }

  /**
   * Runs a read of history on a hot standby when one is fresh (watch catch-up); undefined: read
   * the primary. The caller checks that the answer covers what it needs.
   */
  readOnStandby<T>(f: (sql: Sql) => Promise<T>, revisionOf: (t: T) => number): Promise<T | undefined> {
    return this.opts.standbys ? this.opts.standbys.read(f, revisionOf) : Promise.resolve(undefined);
  }

  get standbys(): Standbys | undefined {
    return this.opts.standbys;
  }

  /**
   * A Range from the head cache, or undefined when the cache cannot answer it. Linearizable as
   * etcd's ReadIndex: the store's revision is read (one tiny statement, after the request
   * arrived), and the answer waits until the cache has applied at least that revision — every
   * write acknowledged before the request is in it, and nothing that was not committed. A
   * serializable head read skips the statement, as etcd answers it from the local member, but
   * not when a notification says the cache is behind. A past revision always reads the
   * revision, for the compaction check.
   */
  private async rangeFromCache(cache: HeadCache, req: RangeRequest, floor: number): Promise<PackedRangeResponse | undefined> {
    let compactRevision = 0;
    if (req.serializable && req.revision <= 0) {
      if (cache.revision < this.index.seen) {
        cache.missed();
        return undefined;
      }
    } else {
      const m = await this.currentRevision();
      // A database behind what this instance served (an asynchronous standby promoted) is a
      // regression, as on the SQL path: never an answer from the cache's lost revisions.
      this.guard.check(m.revision, floor);
      if (!(await cache.waitFor(m.revision, CACHE_WAIT_MS))) {
        cache.missed();
        return undefined;
      }
      compactRevision = m.compactRevision;
    }
    const r = cache.range(req, compactRevision);
    if (!r) cache.missed();
    else this.guard.serve(r.header.revision);
    return r;
  }

  put(req: PutRequest, bytes = 0): Promise<PutResponse> {
    checkPut(req);
    this.checkSize(bytes);
    return this.writer.submit({ type: 'put', put: req }, bytes);
  }

  deleteRange(req: DeleteRangeRequest, bytes = 0): Promise<DeleteRangeResponse> {
    checkDelete(req);
    this.checkSize(bytes);
    return this.writer.submit({ type: 'delete', delete: req }, bytes);
  }

  txn(req: TxnRequest, bytes = 0): Promise<TxnResponse> {
    checkTxn(req, this.opts.maxTxnOps, this.opts.legacySortOrder);
    // etcd sends a txn through raft, and so limits its size, only when it may write.
    if (!isTxnReadOnly(req)) this.checkSize(bytes);
    return this.writer.submit({ type: 'txn', txn: req }, bytes);
  }

  private checkSize(bytes: number): void {
    if (bytes > this.opts.maxRequestBytes) throw new StoreError('RequestTooLarge');
  }

  async compact(revision: number, physical: boolean): Promise<CompactResponse> {
    const resp = await this.writer.submit({ type: 'compact', revision });
    if (physical) {
      await this.compactor.removedUpTo(revision);
      return resp;
    }
    this.compactor.run().catch((err: unknown) => {
      this.opts.log.warn({ err }, 'physical compaction failed; it resumes on the next compaction');
    });
    return resp;
  }

  leaseGrant(id: string, ttl: number): Promise<LeaseGrantResult> {
    return this.writer.submit({ type: 'leaseGrant', id, ttl });
  }

  leaseRevoke(id: string): Promise<LeaseRevokeResult> {
    return this.writer.submit({ type: 'leaseRevoke', id });
  }

  async currentRevision(): Promise<{ revision: number; compactRevision: number }> {
    const [m] = (await dbCall(() => this.sql`SELECT revision, compact_revision FROM meta WHERE id = 1`)) as unknown as Array<{ revision: number; compact_revision: number }>;
    if (!m) throw new StoreError('Unavailable', 'meta row missing');
    return { revision: m.revision, compactRevision: m.compact_revision };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.indexLoad;
    await this.cacheLoad;
    await this.writer.close();
  }
}
