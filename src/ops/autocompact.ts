import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';
import { StoreError } from '../store/errors.ts';

/** Held (session level) by the one instance whose auto-compactor compacts. */
export const AUTO_COMPACT_LOCK = 0x70676574_6303;

export type AutoCompactionMode = 'periodic' | 'revision';

export interface AutoCompactionPolicy {
  mode: AutoCompactionMode;
  /** periodic: milliseconds of history to keep; revision: revisions to keep. */
  retention: number;
}

/**
 * etcd's --auto-compaction-retention: in periodic mode a duration, where a bare number is hours
 * ("1" = 1h, "30m", "1.5h"); in revision mode a number of revisions. 0 turns compaction off
 * (undefined).
 */
export function parseRetention(mode: AutoCompactionMode, text: string): AutoCompactionPolicy | undefined {
  const t = text.trim();
  if (mode === 'revision') {
    const n = Number(t);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--auto-compaction-retention: "${text}" is not a revision count`);
    return n === 0 ? undefined : { mode, retention: n };
  }
  if (/^\d+(\.\d+)?$/.test(t)) {
    const h = Number(t);
    return h === 0 ? undefined : { mode, retention: h * 3_600_000 };
  }
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let ms = 0;
  let rest = t;
  while (rest) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!m) throw new Error(`--auto-compaction-retention: "${text}" is not a duration (e.g. 1h, 30m, or 1 for one hour)`);
    ms += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return ms === 0 ? undefined : { mode, retention: ms };
}

/** etcd's periodic intervals: compact every min(retention, 1h), sample every tenth of that. */
export function periodicIntervals(retentionMs: number): { compactEvery: number; sampleEvery: number; samples: number } {
  const compactEvery = Math.min(retentionMs, 3_600_000);
  const sampleEvery = compactEvery / 10;
  return { compactEvery, sampleEvery, samples: Math.floor(retentionMs / sampleEvery) + 1 };
}

/** etcd's revision mode looks every 5 minutes. */
export const REVISION_INTERVAL_MS = 5 * 60_000;

export interface AutoCompactorDeps {
  policy: AutoCompactionPolicy;
  /** Current store revision. */
  revision: () => Promise<number>;
  /** Compaction through the store's one writer path (etcd's Compact, logical; removal follows). */
  compact: (revision: number) => Promise<void>;
  /** Opens the dedicated one-connection pool that holds the election lock. */
  connect: () => Sql;
  log: Logger;
  /** Overrides etcd's intervals (tests). */
  intervals?: { sampleEvery: number; compactEvery: number; samples: number } | { revisionEvery: number };
}

/**
 * --auto-compaction-mode/--auto-compaction-retention with etcd's semantics. Every instance
 * samples the revision as etcd's members do; only the instance holding AUTO_COMPACT_LOCK (a
 * session advisory lock, taken with a try at each compaction and kept) compacts. When it dies,
 * its session ends, the lock is free, and the next instance to try takes over — with its own
 * samples, so it compacts on schedule (like a new etcd leader).
 *
 *   periodic R: sample every min(R,1h)/10; once R has passed since start (then every
 *               min(R,1h) after a success) compact at the oldest sample, which is R old.
 *   revision R: every 5 minutes compact at current - R unless that is <= 0 or unchanged.
 * "already compacted" counts as success, as in etcd.
 */
export class AutoCompactor {
  private timer: NodeJS.Timeout | undefined;
  private lockSql: Sql | undefined;
  private leader = false;
  private stopped = false;
  private revs: number[] = [];
  private started = Date.now();
  private lastSuccess = Date.now();
  private firstDone = false;
  private prevRevisionTarget = 0;
  private busy: Promise<void> | undefined;

  constructor(private readonly d: AutoCompactorDeps) {}

  start(): void {
    this.started = Date.now();
    this.lastSuccess = this.started;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.busy;
    await this.lockSql?.end({ timeout: 2 }).catch(() => undefined);
    this.lockSql = undefined;
    this.leader = false;
  }

  /** True while this instance holds the auto-compaction lock. */
  isLeader(): boolean {
    return this.leader;
  }

  private interval(): number {
    const iv = this.d.intervals;
    if (this.d.policy.mode === 'revision') return iv && 'revisionEvery' in iv ? iv.revisionEvery : REVISION_INTERVAL_MS;
    return iv && 'sampleEvery' in iv ? iv.sampleEvery : periodicIntervals(this.d.policy.retention).sampleEvery;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.busy = this.tick().catch((err: unknown) => this.d.log.warn({ err }, 'auto-compaction failed')).finally(() => {
        this.busy = undefined;
        this.schedule();
      });
    }, this.interval());
    this.timer.unref();
  }

  /** Sample (periodic) before the wait, as etcd does, so the first sample is the start revision. */
  async begin(): Promise<void> {
    if (this.d.policy.mode === 'periodic') this.revs.push(await this.d.revision());
  }

  private async tick(): Promise<void> {
    if (this.d.policy.mode === 'revision') {
      const target = (await this.d.revision()) - this.d.policy.retention;
      if (target <= 0 || target === this.prevRevisionTarget) return;
      if (await this.compactAt(target)) this.prevRevisionTarget = target;
      return;
    }
    const iv = this.d.intervals && 'sampleEvery' in this.d.intervals ? this.d.intervals : periodicIntervals(this.d.policy.retention);
    // The first compaction waits a whole retention; later ones min(retention, 1h) after a success.
    const base = this.firstDone ? iv.compactEvery : this.d.policy.retention;
    if (Date.now() - this.lastSuccess >= base && this.revs.length > 0 && (await this.elect())) {
      this.firstDone = true;
      // revs[0] is the revision sampled `retention` ago (the window holds retention / sample + 1).
      if (await this.compactAt(this.revs[0]!)) this.lastSuccess = Date.now();
    }
    this.revs.push(await this.d.revision());
    if (this.revs.length > iv.samples) this.revs.shift();
  }

  /** Compacts if this instance is (or becomes) the leader; true on success or "already compacted". */
  private async compactAt(revision: number): Promise<boolean> {
    if (!(await this.elect())) return false;
    try {
      this.d.log.info({ revision, mode: this.d.policy.mode }, 'starting auto compaction');
      await this.d.compact(revision);
      this.d.log.info({ revision }, 'completed auto compaction');
      return true;
    } catch (err) {
      if (err instanceof StoreError && err.code === 'Compacted') return true;
      this.d.log.warn({ err, revision }, 'failed auto compaction');
      return false;
    }
  }

  private async elect(): Promise<boolean> {
    try {
      if (this.leader && this.lockSql) {
        // Still ours only while the session lives.
        await this.lockSql`SELECT 1`;
        return true;
      }
      this.lockSql ??= this.d.connect();
      const [r] = (await this.lockSql`SELECT pg_try_advisory_lock(${AUTO_COMPACT_LOCK}) AS got`) as unknown as Array<{ got: boolean }>;
      this.leader = r!.got;
      if (this.leader) this.d.log.info('this instance runs auto-compaction');
      return this.leader;
    } catch (err) {
      this.leader = false;
      await this.lockSql?.end({ timeout: 1 }).catch(() => undefined);
      this.lockSql = undefined;
      this.d.log.warn({ err }, 'auto-compaction election failed');
      return false;
    }
  }
}
