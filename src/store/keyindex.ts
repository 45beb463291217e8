import type { Sql } from '../db/sql.ts';

/** What the writer needs to know of a live key to evaluate a request on it: no value. */
export interface KeyMeta {
  create_revision: number;
  mod_revision: number;
  version: number;
  lease: string;
}

/** One change as the index takes it (a kv_log row). */
export interface IndexChange {
  key: Buffer;
  deleted: boolean;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease: string;
  /** The value, for the head cache (headcache.ts); the index ignores it. */
  value?: Buffer;
  /**
   * The key as a latin1 string, when the producer has made one: the index, the head cache and
   * the watch ring then hold one string per key instead of a copy each.
   */
  keyStr?: string;
}

export interface IndexStats {
  keys: number;
  revision: number;
  /** Times the index fell behind by a gap in what it was told and was dropped. */
  resets: number;
}

/**
 * The metadata of every live key (kv_current without values), kept in memory like etcd's own
 * key index, complete as of `revision`. The writer evaluates most batches against it and writes
 * them in one statement that only checks the store is still at that revision (see
 * pgetcd_write); it is a cache, never the truth: when it is behind, missing or wrong the check
 * fails and the writer reads from the database instead.
 *
 * It moves forward only by whole revision ranges that continue exactly where it stands: the
 * writer's own commits (rows it knows) and the watch feed's reads of kv_log (every instance's
 * commits, in revision order). `seen` is the highest revision known to exist; while the index
 * is below it, a write based on it would fail its check, so the writer does not try.
 */
export class KeyIndex {
  /** Complete through this revision; -1 while not loaded. */
  revision = -1;
  /** Highest revision known to be committed by anyone. */
  seen = 0;
  private keys = new Map<string, KeyMeta>();
  private loading: Array<{ from: number; to: number; changes: IndexChange[]; gapless: boolean }> | undefined;
  private resets = 0;

  get ready(): boolean {
    return this.revision >= 0 && this.revision >= this.seen;
  }

  get(k: string): KeyMeta | undefined {
    return this.keys.get(k);
  }

  stats(): IndexStats {
    return { keys: this.keys.size, revision: this.revision, resets: this.resets };
  }

  /**
   * Loads every live key in one snapshot. Changes reported while loading are kept and applied
   * after it, so nothing between the snapshot and now is missed.
   */
  async load(sql: Sql): Promise<void> {
    this.loading = [];
    try {
      // One statement, so one snapshot for the revision and the keys (no explicit transaction:
      // postgres.js 3.4 can hang or crash on a reserved connection whose backend died; see
      // writer.ts). Empty stores give one row with a NULL key.
      const rows = (await sql`
        SELECT m.revision AS r, c.key, c.create_revision, c.mod_revision, c.version, c.lease::text AS lease
        FROM meta m LEFT JOIN kv_current c ON true WHERE m.id = 1`) as unknown as Array<{ r: number; key: Buffer | null } & KeyMeta>;
      const keys = new Map<string, KeyMeta>();
      for (const r of rows) {
        if (r.key === null) continue;
        keys.set(r.key.toString('latin1'), {
          create_revision: r.create_revision, mod_revision: r.mod_revision, version: r.version, lease: r.lease,
        });
      }
      const revision = rows[0]?.r ?? 0;
      this.keys = keys;
      this.revision = revision;
      this.seen = Math.max(this.seen, this.revision);
      const queued = this.loading;
      this.loading = undefined;
      for (const q of queued) this.advance(q.from, q.to, q.changes, q.gapless);
    } finally {
      this.loading = undefined;
    }
  }

  /** A revision exists (a notification, or the store's revision read under the write lock). */
  saw(revision: number): void {
    if (revision > this.seen) this.seen = revision;
  }

  /**
   * The changes of revisions (from, to], every one of them, in order. Applied when they
   * continue the index (those it already has are skipped). Otherwise the index is behind:
   * `gapless` sources (the feed, which reports every revision in order) then prove it missed
   * something and it is dropped, to be reloaded; for the writer's own commits it only means the
   * feed has yet to bring what came before, and the commit is left for the feed to bring too.
   */
  advance(from: number, to: number, changes: Iterable<IndexChange>, gapless: boolean): boolean {
    if (this.loading) {
      this.loading.push({ from, to, changes: [...changes], gapless });
      return false;
    }
    this.saw(to);
    if (this.revision < 0 || to <= this.revision) return false;
    if (from > this.revision) {
      if (gapless) this.drop();
      return false;
    }
    for (const c of changes) {
      if (c.mod_revision <= this.revision) continue;
      const k = c.keyStr ?? c.key.toString('latin1');
      if (c.deleted) this.keys.delete(k);
      else this.keys.set(k, { create_revision: c.create_revision, mod_revision: c.mod_revision, version: c.version, lease: c.lease });
    }
    this.revision = to;
    return true;
  }

  /** Forgets everything; the index stays unusable until load() runs again. */
  drop(): void {
    this.keys = new Map();
    this.revision = -1;
    this.resets++;
  }
}
