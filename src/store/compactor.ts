import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';
import { StoreError } from './errors.ts';
import { toUnavailable } from './pgerrors.ts';

/** Revisions of history removed per transaction, so no single delete holds locks for long. */
const CHUNK = 10_000;
/** Any instance may compact; this advisory lock makes one do it at a time. */
export const COMPACT_LOCK = 0x70676574_6301;
/** How often a Compact(physical) waiting on another instance's removal looks at its progress. */
const POLL_MS = 50;
/**
 * A Compact(physical) waiting on another instance gives up (retryably) when that instance's
 * removal has not moved for this long: a chunk is one transaction over at most CHUNK revisions.
 */
const STALL_MS = 30_000;

/** Told about each compaction pass that removed history (metrics). */
export interface CompactionObserver {
  compacted(rows: number, seconds: number): void;
}

/**
 * Physical compaction: removes the history that a recorded compaction made unreachable. For
 * compact revision C a row goes when a newer row of its key is at or below C (found through the
 * newer row's prev_revision) or when it is a tombstone at or below C — what etcd's compaction
 * keeps is exactly the latest live version at or below C of each key. Progress is stored per
 * chunk, so a crash resumes where it stopped.
 */
export interface CompactorPacing {
  /** Most rows removed per second (0: as fast as it goes). Pauses between chunks keep to it. */
  rowsPerSecond: number;
  /** ANALYZE the partitioned parent kv_log after this many rows are removed (0: never). */
  analyzeAfterRows: number;
  /** Revisions of history per removal transaction. */
  chunkRevisions: number;
}

export class Compactor {
  private running: Promise<void> | undefined;
  private again = false;
  /** Rows removed since kv_log was last analysed. */
  private removedSinceAnalyze = 0;
  private analyzeRefused = false;
  pacing: CompactorPacing = { rowsPerSecond: 0, analyzeAfterRows: 100_000, chunkRevisions: CHUNK };

  private removed = 0;
  private chunks = 0;

  constructor(private readonly sql: Sql, private readonly log: Logger, private readonly observer?: CompactionObserver) {}

  /** Runs (or joins) a compaction pass up to the recorded compact revision. */
  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.loop().finally(() => { this.running = undefined; });
    return this.running;
  }

  /**
   * Resolves once the history up to `revision` is physically removed, by this instance or by
   * another one holding the compaction lock (etcd answers Compact{physical} only then). A removal
   * that fails, or another instance's that stops progressing, is an UNAVAILABLE error the
   * client may retry: the compaction itself is recorded and the removal resumes.
   */
  async removedUpTo(revision: number): Promise<void> {
    let last = -1;
    let since = Date.now();
    for (;;) {
      try {
        await this.run();
      } catch (err) {
        this.log.warn({ err }, 'physical compaction failed; it resumes on the next compaction');
        throw toUnavailable(err) ?? new StoreError('Unavailable', 'physical compaction failed');
      }
      const done = await this.physicalRevision();
      if (done >= revision) return;
      if (done !== last) {
        last = done;
        since = Date.now();
      } else if (Date.now() - since > STALL_MS) {
        throw new StoreError('Unavailable', `physical compaction stalled at revision ${done}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  private async physicalRevision(): Promise<number> {
    try {
      const [r] = (await this.sql`SELECT physical_revision FROM compaction`) as unknown as Array<{ physical_revision: number }>;
      return r?.physical_revision ?? 0;
    } catch (err) {
      throw toUnavailable(err) ?? err;
    }
  }

  private async loop(): Promise<void> {
    const t0 = performance.now();
    this.removed = 0;
    this.chunks = 0;
    try {
      do {
        this.again = false;
        for (;;) {
          const started = Date.now();
          const r = await this.chunk();
          this.removedSinceAnalyze += r.rows;
          if (!r.more) break;
          // Pace the removal: a chunk of n rows takes at least n / rowsPerSecond seconds.
          const rps = this.pacing.rowsPerSecond;
          const wait = rps > 0 ? (r.rows / rps) * 1000 - (Date.now() - started) : 0;
          if (wait > 0) await new Promise((res) => setTimeout(res, wait));
        }
      } while (this.again);
    } finally {
      if (this.chunks > 0) this.observer?.compacted(this.removed, (performance.now() - t0) / 1000);
    }
    // In the background: a Compact(physical) answers once the rows are gone, not after ANALYZE.
    void this.analyzeIfDue();
  }

  /**
   * Autovacuum analyses partitions but never a partitioned parent, and the planner's estimates
   * for kv_log (joins, LIMITs over all kinds) come from the parent's statistics.
   */
  private async analyzeIfDue(): Promise<void> {
    const every = this.pacing.analyzeAfterRows;
    if (every <= 0 || this.removedSinceAnalyze < every || this.analyzeRefused) return;
    this.removedSinceAnalyze = 0;
    try {
      await this.sql`ANALYZE kv_log`;
    } catch (err) {
      // A role with DML rights only may not ANALYZE (PostgreSQL 17+: GRANT MAINTAIN ON kv_log).
      this.analyzeRefused = true;
      this.log.warn({ err }, 'ANALYZE kv_log after compaction failed; analyse it from cron or grant MAINTAIN');
    }
  }

  /**
   * One chunk: the revisions (lo, hi], partition by partition. Each partition's step is one
   * statement (so one transaction, on any pool connection: postgres.js 3.4 can crash the process
   * when a transaction's pinned connection is used after its backend died). A key's rows all sit
   * in one partition (the kind is a function of the key), so each step finds the rows a newer
   * row of the range supersedes by an index probe per row (LATERAL + LIMIT 1) and deletes them
   * by ctid: a join would let the planner hash the whole partition for every chunk. Progress is
   * recorded after the last partition; a step repeated after a crash finds nothing left to do.
   * Stops (more: false) when nothing is left or another session holds the compaction lock.
   */
  private async chunk(): Promise<{ more: boolean; rows: number }> {
    const [st] = (await this.sql`
      SELECT c.physical_revision AS lo, least(m.compact_revision, c.physical_revision + ${this.pacing.chunkRevisions}) AS hi,
             m.compact_revision AS target
      FROM meta m, compaction c WHERE c.physical_revision < m.compact_revision`) as unknown as Array<{ lo: number; hi: number; target: number }>;
    if (!st) return { more: false, rows: 0 };
    const parts = (await this.sql`
      SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'kv_log'::regclass ORDER BY 1`) as unknown as Array<{ name: string }>;
    let superseded = 0;
    let tombstones = 0;
    for (const { name } of parts) {
      const t = `"${name.replace(/"/g, '""')}"`;
      const [r] = (await this.sql.unsafe(`
        WITH ok AS (SELECT pg_try_advisory_xact_lock($3) AS got),
        superseded AS (
          DELETE FROM ${t} l WHERE (SELECT got FROM ok) AND l.ctid = ANY (ARRAY(
            SELECT v.ctid FROM ${t} s CROSS JOIN LATERAL (
              SELECT x.ctid FROM ${t} x WHERE x.key = s.key AND x.mod_revision = s.prev_revision LIMIT 1
            ) v
            WHERE s.mod_revision > $1 AND s.mod_revision <= $2 AND s.prev_revision > 0))
          RETURNING 1
        ), tombstones AS (
          DELETE FROM ${t} d WHERE (SELECT got FROM ok) AND d.deleted AND d.mod_revision > $1 AND d.mod_revision <= $2
          RETURNING 1
        )
        SELECT (SELECT got FROM ok) AS got, (SELECT count(*) FROM superseded)::int AS s, (SELECT count(*) FROM tombstones)::int AS t`,
      [st.lo, st.hi, COMPACT_LOCK])) as unknown as Array<{ got: boolean; s: number; t: number }>;
      if (!r?.got) return { more: false, rows: superseded + tombstones };
      superseded += r.s;
      tombstones += r.t;
    }
    const done = (await this.sql`UPDATE compaction SET physical_revision = ${st.hi} WHERE physical_revision = ${st.lo} RETURNING 1`) as unknown as unknown[];
    const r = { lo: st.lo, hi: st.hi, target: st.target, superseded, tombstones };
    this.chunks++;
    this.removed += r.superseded + r.tombstones;
    if (done.length === 0) return { more: true, rows: r.superseded + r.tombstones };
    this.log.debug({ from: r.lo, to: r.hi, superseded: r.superseded, tombstones: r.tombstones }, 'compacted history');
    return { more: r.hi < r.target, rows: r.superseded + r.tombstones };
  }
}
