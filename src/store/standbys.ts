import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';
import { StoreError } from './errors.ts';

/** One hot standby reads may go to: its name (host:port, no credentials) and its pool. */
export interface StandbyTarget {
  name: string;
  sql: Sql;
}

export interface StandbyOptions {
  log: Logger;
  /** A standby further behind the primary than this (in time) takes no reads. */
  maxLagMs: number;
  /** How often each standby's replayed revision is read (there is no NOTIFY on a standby). */
  pollMs: number;
  /** The primary's cluster_id: a server of another database is never read. */
  clusterId: string;
}

/** What /metrics and the bench report per standby. */
export interface StandbyStats {
  standby: string;
  up: boolean;
  /** meta.revision the standby had replayed when last seen (-1: never seen). */
  revision: number;
  /** Revisions the standby is behind the highest this instance knows the primary reached. */
  behindRevisions: number;
  /** How long the primary has had a revision the standby lacks (0: caught up). */
  lagMs: number;
  /** Reads the standby answered. */
  served: number;
  /** Reads it could not answer because it had not replayed their revision yet (the primary answered). */
  behind: number;
  /** Reads that failed on it (the primary answered). */
  failed: number;
}

interface Standby extends StandbyTarget {
  revision: number;
  /** Answered its last poll, is in recovery and belongs to this cluster. */
  up: boolean;
  /** Why it is down, logged once per change. */
  why: string;
  polling: boolean;
  served: number;
  behind: number;
  failed: number;
}

/** A poll slower than this counts as a standby that is not answering (generous: a loaded standby is still a standby). */
const POLL_TIMEOUT_MS = 5000;

/**
 * Read routing to hot standbys. A standby serves a read only when it is up (answers, is in
 * recovery, same cluster_id) and not lagging: it has replayed every revision the primary had
 * `maxLagMs` ago, as far as this instance knows the primary's revisions (its own commits and the
 * notifications of everyone's). Time, not a revision count, because revisions arrive at very
 * different rates: an idle primary leaves a standby that replayed everything at lag 0, however
 * old its last commit.
 *
 * The standby's revision is learned by polling `meta` (no NOTIFY reaches a standby) and from
 * every answer's header. A read that needs revision R is sent to a fresh standby even when the
 * last known revision is below R (it usually replays R within milliseconds of the primary's
 * commit): the statement itself checks R against the standby's meta in the same snapshot, and
 * a FutureRev from the standby sends the read to the primary. Any failure on a standby also
 * sends the read to the primary, so clients never see a standby's trouble.
 *
 * Nothing here writes: standbys never see a write, a lease or an election.
 */
export class Standbys {
  private readonly list: Standby[];
  /** Revisions of the primary with the time this instance first knew of each; oldest first. */
  private samples: Array<{ t: number; rev: number }> = [];
  private primaryRev = 0;
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(targets: readonly StandbyTarget[], private readonly opts: StandbyOptions) {
    this.list = targets.map((t) => ({ ...t, revision: -1, up: false, why: 'not polled yet', polling: false, served: 0, behind: 0, failed: 0 }));
  }

  get size(): number {
    return this.list.length;
  }

  /** Starts polling; resolves after the first poll of every standby (up or not). */
  async start(): Promise<void> {
    await Promise.all(this.list.map((s) => this.poll(s)));
    this.timer = setInterval(() => { for (const s of this.list) void this.poll(s); }, this.opts.pollMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await Promise.all(this.list.map((s) => s.sql.end({ timeout: 2 }).catch(() => undefined)));
  }

  /** The primary has (at least) `revision`: a commit, a notification, a primary read's header. */
  primaryAt(revision: number): void {
    if (revision <= this.primaryRev) return;
    this.primaryRev = revision;
    const now = Date.now();
    this.samples.push({ t: now, rev: revision });
    // Keep one sample at or before the lag window's start: it is the revision a fresh standby must have.
    const cutoff = now - this.opts.maxLagMs;
    while (this.samples.length > 1 && this.samples[1]!.t <= cutoff) this.samples.shift();
  }

  /** The revision a standby must have replayed to count as fresh now. */
  private required(now: number): number {
    const cutoff = now - this.opts.maxLagMs;
    while (this.samples.length > 1 && this.samples[1]!.t <= cutoff) this.samples.shift();
    const first = this.samples[0];
    return first && first.t <= cutoff ? first.rev : 0;
  }

  private lagMs(s: Standby, now: number): number {
    if (s.revision >= this.primaryRev) return 0;
    const ahead = this.samples.find((x) => x.rev > s.revision) ?? this.samples[0];
    return ahead ? now - ahead.t : 0;
  }

  /** A standby that is up and fresh, round robin; undefined when none is. */
  private pick(): Standby | undefined {
    const need = this.required(Date.now());
    for (let i = 0; i < this.list.length; i++) {
      const s = this.list[(this.next + i) % this.list.length]!;
      if (s.up && s.revision >= need) {
        this.next = (this.next + i + 1) % this.list.length;
        return s;
      }
    }
    return undefined;
  }

  /**
   * Runs a read on a standby: `f`'s answer with the revision it was read at (its header), or
   * undefined when the primary must answer (no fresh standby, the standby had not replayed the
   * revision the read needs, or it failed). Compacted is an answer: a standby's compact revision
   * is never above the primary's, so the primary would say the same.
   */
  async read<T>(f: (sql: Sql) => Promise<T>, revisionOf: (t: T) => number): Promise<T | undefined> {
    const s = this.pick();
    if (!s) return undefined;
    try {
      const r = await f(s.sql);
      s.served++;
      this.seen(s, revisionOf(r));
      return r;
    } catch (err) {
      if (err instanceof StoreError && err.code === 'Compacted') {
        s.served++;
        throw err;
      }
      if (err instanceof StoreError && err.code === 'FutureRev') {
        s.behind++;
        return undefined;
      }
      s.failed++;
      this.down(s, `read failed: ${(err as Error).message}`);
      return undefined;
    }
  }

  private seen(s: Standby, revision: number): void {
    if (revision > s.revision) s.revision = revision;
  }

  private async poll(s: Standby): Promise<void> {
    if (s.polling || this.stopped) return;
    s.polling = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const q = s.sql`SELECT m.revision, m.cluster_id::text AS cluster_id, pg_is_in_recovery() AS recovery FROM meta m WHERE m.id = 1` as unknown as Promise<Array<{ revision: number; cluster_id: string; recovery: boolean }>>;
      const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer in ${POLL_TIMEOUT_MS} ms`)), POLL_TIMEOUT_MS); });
      const [m] = await Promise.race([q, timeout]);
      if (!m) return this.down(s, 'meta row missing (not a copy of this database)');
      if (BigInt.asUintN(64, BigInt(m.cluster_id)).toString() !== this.opts.clusterId) return this.down(s, 'another cluster (cluster_id differs from the primary\'s)');
      if (!m.recovery) return this.down(s, 'not in recovery (a primary, not a hot standby)');
      // After a restore or a new base backup the revision may go down: take what it says.
      s.revision = m.revision;
      if (!s.up) {
        s.up = true;
        s.why = '';
        this.opts.log.info({ standby: s.name, revision: m.revision }, 'standby takes reads');
      }
    } catch (err) {
      this.down(s, (err as Error).message);
    } finally {
      clearTimeout(timer);
      s.polling = false;
    }
  }

  private down(s: Standby, why: string): void {
    const was = s.up || s.why !== why;
    s.up = false;
    if (was && !this.stopped) this.opts.log.warn({ standby: s.name, why }, 'standby takes no reads until it answers again');
    s.why = why;
  }

  stats(): StandbyStats[] {
    const now = Date.now();
    return this.list.map((s) => ({
      standby: s.name, up: s.up, revision: s.revision,
      behindRevisions: s.revision < 0 ? 0 : Math.max(0, this.primaryRev - s.revision),
      lagMs: this.lagMs(s, now), served: s.served, behind: s.behind, failed: s.failed,
    }));
  }
}
