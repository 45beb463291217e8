import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';
import { StoreError } from './errors.ts';

/** What was lost: the store is at `storeRevision` but this instance served up to `servedRevision`. */
export interface Regression {
  servedRevision: number;
  storeRevision: number;
}

/**
 * Guards against the database going back in time: after a failover to an asynchronous standby
 * the new primary can lack commits this instance already acknowledged, answered reads at or
 * delivered to watchers. Every revision this instance hands out is reported to served(); every
 * revision it reads from the database (meta under the write lock, range headers, the watch
 * feed) goes through check(). A store revision below the served one is a regression:
 *
 * - the request fails with UNAVAILABLE (never an answer from the older state);
 * - it is logged at error level with both revisions;
 * - `meta.revision` is raised to the served revision, so new writes get numbers above
 *   everything this instance handed out: a revision number is never given to different
 *   contents by this instance (the lost revisions stay a gap in the history);
 * - the listeners run (watches are canceled with a reason so clients re-list, the key index
 *   and remembered page counts are rebuilt).
 *
 * With several instances, one that never heard of the lost revisions could write at those
 * numbers before the one that served them raises meta; docs/design.md says which PostgreSQL
 * settings rule this out (synchronous replication).
 */
export class RevisionGuard {
  private highest = 0;
  private recovering: Promise<void> | undefined;
  private readonly listeners: Array<(r: Regression) => void> = [];
  /** Regressions detected since start. */
  detected = 0;

  constructor(private readonly sql: Sql, private readonly log: Logger) {}

  /** The highest revision this instance has handed out. */
  get served(): number {
    return this.highest;
  }

  /** This instance handed out `revision` (a commit, a read's header, a watch event). */
  serve(revision: number): void {
    if (revision > this.highest) this.highest = revision;
  }

  /**
   * Throws UNAVAILABLE, and starts the recovery once, when the store is behind what was served.
   * `floor` is `served` taken before the database read began: a revision served while the read
   * ran may be newer than the read's snapshot without anything being lost.
   */
  check(storeRevision: number, floor: number): void {
    if (storeRevision >= floor && !this.recovering) return;
    if (!this.recovering) this.recover({ servedRevision: Math.max(floor, this.highest), storeRevision });
    throw new StoreError('Unavailable', `database revision ${storeRevision} is behind revision ${floor} already served`);
  }

  onRegression(listener: (r: Regression) => void): void {
    this.listeners.push(listener);
  }

  private recover(r: Regression): void {
    this.detected++;
    this.log.error({ servedRevision: r.servedRevision, storeRevision: r.storeRevision, lostRevisions: r.servedRevision - r.storeRevision },
      'PostgreSQL is behind revisions this instance already served (failover to an asynchronous standby?): '
      + 'those writes are lost; new revisions continue above the served one, watches are canceled, the key index is rebuilt');
    this.recovering = (async () => {
      for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
        try {
          await this.sql`UPDATE meta SET revision = GREATEST(revision, ${r.servedRevision}) WHERE id = 1`;
          break;
        } catch (err) {
          this.log.warn({ err }, 'raising the store revision after a regression failed; retrying');
          await new Promise((res) => setTimeout(res, delay));
        }
      }
      for (const l of this.listeners) {
        try {
          l(r);
        } catch (err) {
          this.log.error({ err }, 'regression listener failed');
        }
      }
      this.log.warn({ revision: r.servedRevision }, 'store revision raised after the regression; serving again');
    })().finally(() => { this.recovering = undefined; });
  }
}
