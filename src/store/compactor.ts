import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';

/** Revisions of history removed per transaction, so no single delete holds locks for long. */
const CHUNK = 10_000;
/** Any instance may compact; this advisory lock makes one do it at a time. */
const COMPACT_LOCK = 0x70676574_6301;

/**
 * Physical compaction: removes the history that a recorded compaction made unreachable. For
 * compact revision C a row goes when a newer row of its key is at or below C (found through the
 * newer row's prev_revision) or when it is a tombstone at or below C — what etcd's compaction
 * keeps is exactly the latest live version at or below C of each key. Progress is stored per
 * chunk, so a crash resumes where it stopped.
 */
export class Compactor {
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly sql: Sql, private readonly log: Logger) {}

  /** Runs (or joins) a compaction pass up to the recorded compact revision. */
  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.loop().finally(() => { this.running = undefined; });
    return this.running;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      while (await this.chunk()) { /* keep going */ }
    } while (this.again);
  }

  /** One chunk in one transaction; false when there is nothing left to do. */
  private async chunk(): Promise<boolean> {
    return await this.sql.begin(async (tx) => {
      const [lock] = (await tx`SELECT pg_try_advisory_xact_lock(${COMPACT_LOCK}) AS ok`) as unknown as Array<{ ok: boolean }>;
      if (!lock?.ok) return false;
      const [st] = (await tx`SELECT m.compact_revision AS target, c.physical_revision AS done
        FROM meta m, compaction c`) as unknown as Array<{ target: number; done: number }>;
      if (!st || st.done >= st.target) return false;
      const lo = st.done;
      const hi = Math.min(st.target, lo + CHUNK);
      const superseded = await tx`
        DELETE FROM kv_log l
        USING (SELECT key, prev_revision, kind FROM kv_log
               WHERE mod_revision > ${lo} AND mod_revision <= ${hi} AND prev_revision > 0) s
        WHERE l.key = s.key AND l.mod_revision = s.prev_revision AND l.kind = s.kind`;
      const tombstones = await tx`DELETE FROM kv_log WHERE deleted AND mod_revision > ${lo} AND mod_revision <= ${hi}`;
      await tx`UPDATE compaction SET physical_revision = ${hi}`;
      this.log.debug({ from: lo, to: hi, superseded: superseded.count, tombstones: tombstones.count }, 'compacted history');
      return hi < st.target;
    }) as boolean;
  }
}
