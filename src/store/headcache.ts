import type { Sql } from '../db/sql.ts';
import { StoreError } from './errors.ts';
import { decodeKeyValue, encodeKeyValue, withoutValue } from './kvbytes.ts';
import { finishRange, isFromKey, isSingleKey } from './rangeview.ts';
import { SortedKeys } from './sortedkeys.ts';
import type { KeyValue, PackedRangeResponse, RangeRequest } from './types.ts';

/** One committed change as the cache takes it: a kv_log row with its value. */
export interface CacheChange {
  key: Buffer;
  deleted: boolean;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease: string;
  value?: Buffer;
  /** The key as a latin1 string, when the producer has one (see IndexChange.keyStr). */
  keyStr?: string;
}

export interface HeadCacheStats {
  keys: number;
  bytes: number;
  revision: number;
  /** Ranges answered from memory, and those sent to SQL (cold, behind, history unknown). */
  hits: number;
  misses: number;
  /** Times the cache was dropped (a gap in the feed, or over its memory bound). */
  drops: number;
}

/** What V8 and the Map/array spend on a key beyond its bytes (measured, rounded up). */
const PER_KEY_OVERHEAD = 200;
/** Recent changes remembered to answer ranges at a past revision (key and revision each). */
const HISTORY_MAX = 65_536;
/** More recent changes than this after the requested revision: let SQL answer. */
const HISTORY_SCAN_MAX = 4_096;
/** After the cache outgrew its bound it is not loaded again for this long, doubled each time up to the cap. */
const RELOAD_AFTER_OVERFLOW_MS = 60_000;
const RELOAD_AFTER_OVERFLOW_MAX_MS = 60 * 60_000;
/** Rows per fetch of the load's cursor: the load stops at the first batch past the bound. */
const LOAD_BATCH_ROWS = 2_000;

const EMPTY = Buffer.alloc(0);

/** A change's key-value as the cache keeps it: mvccpb.KeyValue bytes (kvbytes.ts). */
function entryOf(c: CacheChange): Buffer {
  return encodeKeyValue({
    key: c.key, value: c.value ?? EMPTY, create_revision: c.create_revision, mod_revision: c.mod_revision,
    version: c.version, lease: c.lease,
  });
}

/** A live key and its entry, as the key order holds it. */
interface Slot {
  readonly k: string;
  e: Buffer;
}

function entrySize(k: string, e: Buffer): number {
  return e.length + k.length + PER_KEY_OVERHEAD;
}

/**
 * The live keys with their values (kv_current in memory), complete as of `revision`, kept in key
 * order, like kube-apiserver's watch cache: a Range at the current revision is answered without
 * PostgreSQL. It is fed exactly as the key index is (keyindex.ts): moved forward only by whole
 * revision ranges that continue where it stands — this instance's commits and the watch feed's
 * reads of kv_log, which bring every instance's commits in revision order — so it only ever
 * holds a state the store really had. Linearizability comes from the caller (Store): it learns
 * the store's revision with one tiny query and waits until the cache has applied it.
 *
 * Each key's entry is kept already encoded as etcd's mvccpb.KeyValue (kvbytes.ts, the form etcd
 * keeps in its own backend), so a list is answered by copying one buffer per key into the
 * response. Bounded by `maxBytes`: a cache that outgrows it is dropped and ranges go to SQL.
 */
export class HeadCache {
  /** Complete through this revision; -1 while not loaded. */
  revision = -1;
  /** Each live key's slot; a key keeps its slot while it lives, its entry replaced on each write. */
  private entries = new Map<string, Slot>();
  /** The slots of `entries` in key order (latin1 strings compare as their bytes). */
  private readonly order = new SortedKeys<Slot>();
  private bytes = 0;
  private loading: Array<{ from: number; to: number; changes: CacheChange[]; gapless: boolean }> | undefined;
  /** Changes after `historyFrom`, in revision order: which keys changed after a past revision. */
  private histRev: number[] = [];
  private histKey: string[] = [];
  private histHead = 0;
  private historyFrom = -1;
  private waiters: Array<{ revision: number; done: (ok: boolean) => void }> = [];
  private overflowAt = -Infinity;
  private overflows = 0;
  private readonly counters = { hits: 0, misses: 0, drops: 0 };

  constructor(private readonly maxBytes: number) {}

  get ready(): boolean {
    return this.revision >= 0;
  }

  /** False for a while after the cache outgrew its bound (a load would only outgrow it again). */
  get mayLoad(): boolean {
    const wait = Math.min(RELOAD_AFTER_OVERFLOW_MS * 2 ** Math.max(0, this.overflows - 1), RELOAD_AFTER_OVERFLOW_MAX_MS);
    return !this.loading && this.revision < 0 && performance.now() - this.overflowAt > wait;
  }

  stats(): HeadCacheStats {
    return { keys: this.entries.size, bytes: this.bytes, revision: this.revision, ...this.counters };
  }

  missed(): void {
    this.counters.misses++;
  }

  /**
   * Loads every live key with its value in one snapshot (one statement read through a cursor, so
   * a key space past the bound is abandoned after the first batch over it instead of being read
   * whole into memory); changes reported meanwhile follow.
   */
  async load(sql: Sql): Promise<void> {
    if (this.loading) return;
    this.loading = [];
    try {
      const entries = new Map<string, Slot>();
      const sorted: Slot[] = [];
      let bytes = 0;
      let revision = -1;
      let over = false;
      const cursor = sql`
        SELECT m.revision AS r, c.key, c.create_revision, c.mod_revision, c.version, c.lease::text AS lease, c.value
        FROM meta m LEFT JOIN kv_current c ON true WHERE m.id = 1 ORDER BY c.key`.cursor(LOAD_BATCH_ROWS) as unknown as AsyncIterable<Array<{ r: number; key: Buffer | null } & CacheChange>>;
      for await (const rows of cursor) {
        for (const r of rows) {
          revision = r.r;
          if (r.key === null) continue;
          const k = r.key.toString('latin1');
          const e = entryOf({ ...r, key: r.key, deleted: false });
          const slot = { k, e };
          entries.set(k, slot);
          sorted.push(slot);
          bytes += entrySize(k, e);
        }
        if (bytes > this.maxBytes) {
          over = true;
          break; // ends the cursor
        }
      }
      if (over) {
        this.overflowAt = performance.now();
        this.overflows++;
        this.counters.drops++;
        return;
      }
      // ORDER BY key sorts by PostgreSQL's bytea order, which is the byte order of the strings.
      this.entries = entries;
      this.order.reset(sorted);
      this.bytes = bytes;
      this.revision = Math.max(revision, 0);
      this.overflows = 0;
      this.resetHistory(this.revision);
      const queued = this.loading;
      this.loading = undefined;
      for (const q of queued) this.advance(q.from, q.to, q.changes, q.gapless);
      this.wake();
    } finally {
      this.loading = undefined;
    }
  }

  /**
   * The changes of revisions (from, to], every one, in order. Applied when they continue the
   * cache; a gap from a gapless source (the feed) drops it, a gap from this instance's own
   * commits only means the feed has yet to bring what came before (see KeyIndex.advance).
   * `before`, when given, is filled with each changed key's entry as it was before the batch
   * (null: the key did not exist), for a caller that wants the versions a batch replaced.
   * True when the batch was applied.
   */
  advance(from: number, to: number, changes: Iterable<CacheChange>, gapless: boolean, before?: Map<string, Buffer | null>): boolean {
    if (this.loading) {
      this.loading.push({ from, to, changes: [...changes], gapless });
      return false;
    }
    if (this.revision < 0 || to <= this.revision) return false;
    if (from > this.revision) {
      if (gapless) this.drop();
      return false;
    }
    for (const c of changes) {
      if (c.mod_revision <= this.revision) continue;
      this.apply(c, before);
    }
    this.revision = to;
    if (this.bytes > this.maxBytes) {
      this.overflowAt = performance.now();
      this.overflows++;
      this.drop();
      return false;
    }
    this.wake();
    return true;
  }

  /** The key's entry now (mvccpb.KeyValue bytes, never modified: callers may keep views of it). */
  entry(k: string): Buffer | undefined {
    return this.entries.get(k)?.e;
  }

  /** Applies one change to the entries and the key order. */
  private apply(c: CacheChange, before: Map<string, Buffer | null> | undefined): void {
    const k = c.keyStr ?? c.key.toString('latin1');
    const slot = this.entries.get(k);
    if (before && !before.has(k)) before.set(k, slot?.e ?? null);
    if (slot) this.bytes -= entrySize(k, slot.e);
    if (c.deleted) {
      if (slot) {
        this.entries.delete(k);
        this.order.remove(slot);
      }
    } else {
      const e = entryOf(c);
      if (slot) slot.e = e;
      else {
        const added = { k, e };
        this.entries.set(k, added);
        this.order.add(added);
      }
      this.bytes += entrySize(k, e);
    }
    this.remember(c.mod_revision, k);
  }

  private remember(revision: number, k: string): void {
    this.histRev.push(revision);
    this.histKey.push(k);
    if (this.histRev.length - this.histHead <= HISTORY_MAX) return;
    // Everything after the forgotten change's revision is still known.
    this.historyFrom = this.histRev[this.histHead]!;
    this.histHead++;
    if (this.histHead >= HISTORY_MAX) {
      this.histRev = this.histRev.slice(this.histHead);
      this.histKey = this.histKey.slice(this.histHead);
      this.histHead = 0;
    }
  }

  private resetHistory(revision: number): void {
    this.histRev = [];
    this.histKey = [];
    this.histHead = 0;
    this.historyFrom = revision;
  }

  /** Forgets everything until load() runs again; callers waiting for a revision go to SQL. */
  drop(): void {
    this.entries = new Map();
    this.order.reset([]);
    this.bytes = 0;
    this.revision = -1;
    this.resetHistory(-1);
    this.counters.drops++;
    this.wake();
  }

  /** Resolves true once the cache has applied `revision`, false after `ms` or a drop. */
  waitFor(revision: number, ms: number): Promise<boolean> {
    if (this.revision >= revision) return Promise.resolve(true);
    if (this.revision < 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w = { revision, done: (ok: boolean) => { clearTimeout(timer); resolve(ok); } };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(false);
      }, ms);
      this.waiters.push(w);
    });
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.revision < 0) w.done(false);
      else if (this.revision >= w.revision) w.done(true);
      else keep.push(w);
    }
    this.waiters = keep;
  }

  /** True when a key in the request's range changed after `revision` (or it is not known). */
  private changedAfter(req: RangeRequest, revision: number): boolean {
    if (revision < this.historyFrom) return true;
    let lo = this.histHead;
    let hi = this.histRev.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.histRev[mid]! <= revision) lo = mid + 1;
      else hi = mid;
    }
    if (this.histRev.length - lo > HISTORY_SCAN_MAX) return true;
    const from = req.key.toString('latin1');
    const single = isSingleKey(req.range_end);
    const end = isFromKey(req.range_end) ? undefined : req.range_end.toString('latin1');
    for (let i = lo; i < this.histRev.length; i++) {
      const k = this.histKey[i]!;
      if (single ? k === from : k >= from && (end === undefined || k < end)) return true;
    }
    return false;
  }

  /**
   * The Range as the SQL reader answers it (reader.ts), from memory, with `revision` in the
   * header: undefined when the cache cannot tell (not loaded, or a past revision whose range
   * changed since or is older than the changes it remembers). `compactRevision` is the store's,
   * read with the revision the caller waited for; needed only for a past revision.
   */
  range(req: RangeRequest, compactRevision = 0): PackedRangeResponse | undefined {
    if (this.revision < 0) return undefined;
    const revision = this.revision;
    if (req.revision > 0) {
      if (req.revision > revision) throw new StoreError('FutureRev');
      if (req.revision < compactRevision) throw new StoreError('Compacted');
      if (req.revision < revision && this.changedAfter(req, req.revision)) return undefined;
    }
    this.counters.hits++;
    const [keys, lo, hi] = this.bounds(req);
    const count = Math.max(0, hi - lo);
    const header = { revision };
    if (req.count_only || count === 0) return { header, packed: EMPTY, kvs: 0, more: false, count };
    if (this.keyOrderedUnfiltered(req)) {
      const take = req.limit > 0 ? Math.min(count, req.limit) : count;
      const parts: Buffer[] = [];
      for (let i = lo; i < lo + take; i++) {
        const e = keys[i]!.e;
        parts.push(req.keys_only ? withoutValue(e) : e);
      }
      return { header, packed: EMPTY, entries: parts, kvs: take, more: take < count, count };
    }
    const kvs: KeyValue[] = [];
    for (let i = lo; i < hi; i++) kvs.push(decodeKeyValue(keys[i]!.e));
    const r = finishRange(req, kvs, revision);
    return { header, packed: EMPTY, entries: r.kvs.map(encodeKeyValue), kvs: r.kvs.length, more: r.more, count };
  }

  /**
   * The request's slots: a list of slots and the range [lo, hi) of it that is the request's. A
   * single key is its own slot, found without the key order.
   */
  private bounds(req: RangeRequest): [readonly Slot[], number, number] {
    if (isSingleKey(req.range_end)) {
      const slot = this.entries.get(req.key.toString('latin1'));
      return slot ? [[slot], 0, 1] : [[], 0, 0];
    }
    const keys = this.order.ordered();
    const lo = this.order.lowerBound(req.key.toString('latin1'));
    const hi = isFromKey(req.range_end) ? keys.length : this.order.lowerBound(req.range_end.toString('latin1'));
    return [keys, lo, hi];
  }

  private keyOrderedUnfiltered(req: RangeRequest): boolean {
    // etcd: a non-key target with no order sorts ascending by that target.
    const keyAscending = req.sort_target === 0 && req.sort_order !== 2;
    return keyAscending && req.min_mod_revision === 0 && req.max_mod_revision === 0 &&
      req.min_create_revision === 0 && req.max_create_revision === 0;
  }
}
