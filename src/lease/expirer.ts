import pg from 'pg';
import { connectPrimary } from '../db/session.ts';
import type { PgTarget } from '../db/target.ts';
import type { Logger } from '../log.ts';
import { ELECTION_LOCK, PROMOTED_LOCK } from './locks.ts';

export interface ExpirerOptions {
  target: PgTarget;
  /**
   * Revokes one lease through the writer: resolves true when this call revoked it, false when it
   * was already gone (revoked meanwhile).
   */
  revoke(id: string): Promise<boolean>;
  /** A lease this instance revoked by expiry, `lagSeconds` after its expiry time (when known). */
  expired?(lagSeconds: number | undefined): void;
  log: Logger;
  /** Shown in pg_stat_activity.application_name, so a DBA sees which instance holds the role. */
  name: string;
  /** Longest sleep between two looks at the leases table (leases granted by other instances). */
  maxSleepMs: number;
  /** Pause before reconnecting after an error. */
  retryMs: number;
  /** How often a standby tries to take the role (ms): the longest the role stays vacant. */
  electionPollMs: number;
  /** Added to every lease's TTL when the role is taken (etcd's Promote extension). */
  extendMs: number;
  /** Most leases claimed per round. */
  batch: number;
  /** Bound on one expiry query; a hung database connection then counts as lost. */
  queryTimeoutMs: number;
}

/**
 * Claims the leases that are due and says how long until the next one is. `overdue_ms` (same
 * order as `due`) is how far past its expiry each lease was at the claim, on the database clock;
 * null for a lease claimed before whose revoke failed (its expiry time is gone).
 */
const CLAIM_SQL = `
WITH due AS (
  SELECT id, expires_at FROM leases WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE
), claimed AS (
  UPDATE leases l SET expires_at = '-infinity' FROM due WHERE l.id = due.id RETURNING l.id, due.expires_at AS was
)
SELECT ARRAY(SELECT id::text FROM claimed ORDER BY id) AS due,
       ARRAY(SELECT CASE WHEN was = '-infinity' THEN NULL ELSE (EXTRACT(EPOCH FROM now() - was) * 1000)::float8 END
             FROM claimed ORDER BY id) AS overdue_ms,
       (SELECT EXTRACT(EPOCH FROM min(expires_at) - now()) * 1000 FROM leases WHERE expires_at > now())::float8 AS next_ms`;

const PROMOTE_SQL = `UPDATE leases SET expires_at = now() + ttl * interval '1 second' + $1 * interval '1 millisecond'`;

/**
 * Lease expiry by exactly one pgetcd instance among all those sharing the database.
 *
 * Election: each instance keeps one dedicated session (node-postgres client) and takes the
 * ELECTION advisory lock on it; standbys try it again every electionPollMs, so the role moves
 * within that time of the holder's session ending (a blocking wait would hold a snapshot, and
 * with it VACUUM's horizon, for as long as the holder lives). On taking the role the holder does what etcd's lessor
 * does after a leader change (Promote): every lease's expiry becomes now + TTL + extendMs, so no
 * lease expires because pgetcd or the database was down; then it takes PROMOTED (see locks.ts).
 *
 * Expiry: the holder claims due leases on its lock session (sets expires_at to -infinity with
 * the rows locked, so a keep-alive racing with expiry either wins before the claim or sees the
 * lease dead afterwards) and revokes each with an ordinary store.leaseRevoke through the writer:
 * one revision per lease, its keys deleted in key order. Claimed leases whose revoke failed are
 * claimed again on the next round. Between rounds it sleeps until the earliest expires_at, at most
 * maxSleepMs (1 s: shorter than the 2 s minimum TTL, so a lease granted by another instance is
 * never noticed late); a lease granted locally that expires sooner wakes it early. Running the
 * claim on the lock session proves the lock is still held: if that session is gone, so is the role.
 */
export class LeaseExpirer {
  readonly stats = { promotions: 0, expired: 0, rounds: 0 };
  private client: pg.Client | undefined;
  private primary = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private sleeper: { timer: NodeJS.Timeout; until: number; resolve: () => void } | undefined;

  constructor(private readonly opts: ExpirerOptions) {}

  /** True while this instance expires leases. */
  get isPrimary(): boolean {
    return this.primary;
  }

  /**
   * Tries the role once before the server starts serving, so a restarted single instance has
   * extended every lease before the first keep-alive arrives; then runs in the background.
   */
  async start(): Promise<void> {
    try {
      const c = await this.connect();
      const r = await this.query<{ got: boolean }>(c, 'SELECT pg_try_advisory_lock($1) AS got', [ELECTION_LOCK.key]);
      if (r.rows[0]?.got) await this.promote(c);
    } catch (err) {
      this.fail(err);
    }
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    this.dropClient();
    await this.loop;
    // A connection the loop opened while stopping (its connect was in flight) ends too: an open
    // socket would keep the process alive.
    this.dropClient();
  }

  /** A lease was granted here that expires in ttlMs: wake up if that is before the planned wake-up. */
  granted(ttlMs: number): void {
    if (this.sleeper && Date.now() + ttlMs < this.sleeper.until) this.wake();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const c = this.client ?? (await this.connect());
        if (!this.primary) {
          // Standby: tries again every electionPollMs. Not a blocking pg_advisory_lock: a
          // statement waiting on a lock holds its snapshot, and that xmin keeps VACUUM from
          // removing any row deleted since, in every table of the database, for as long as the
          // holder lives.
          const r = await this.query<{ got: boolean }>(c, 'SELECT pg_try_advisory_lock($1) AS got', [ELECTION_LOCK.key]);
          if (this.stopped) break;
          if (r.rows[0]?.got) await this.promote(c);
          else await this.sleep(this.opts.electionPollMs);
          continue;
        }
        await this.round(c);
      } catch (err) {
        if (this.stopped) break;
        this.fail(err);
        await this.sleep(this.opts.retryMs);
      }
    }
  }

  private async round(c: pg.Client): Promise<void> {
    this.stats.rounds++;
    // The lag of each revocation: overdue at the claim (database clock; now() is the statement's
    // transaction start) plus the time from sending the claim to the revoke's commit (this clock).
    const claimedAt = performance.now();
    const r = await this.query<{ due: string[]; overdue_ms: Array<number | null>; next_ms: number | null }>(c, CLAIM_SQL, [this.opts.batch]);
    const row = r.rows[0]!;
    if (row.due.length > 0) {
      const results = await Promise.allSettled(row.due.map(async (id, i) => {
        if (!(await this.opts.revoke(id))) return;
        const overdue = row.overdue_ms[i];
        this.opts.expired?.(overdue == null ? undefined : (overdue + performance.now() - claimedAt) / 1000);
      }));
      const failed = results.filter((x): x is PromiseRejectedResult => x.status === 'rejected');
      this.stats.expired += results.length - failed.length;
      this.opts.log.debug({ expired: results.length - failed.length }, 'leases expired');
      if (failed.length > 0) {
        // They stay claimed and are retried on the next round.
        this.opts.log.warn({ failed: failed.length, err: failed[0]!.reason as unknown }, 'revoking expired leases failed; retrying');
        await this.sleep(this.opts.retryMs);
      }
      return;
    }
    const next = row.next_ms === null ? this.opts.maxSleepMs : Math.ceil(row.next_ms) + 1;
    await this.sleep(Math.max(0, Math.min(next, this.opts.maxSleepMs)));
  }

  private async promote(c: pg.Client): Promise<void> {
    const r = await this.query(c, PROMOTE_SQL, [this.opts.extendMs]);
    const p = await this.query<{ got: boolean }>(c, 'SELECT pg_try_advisory_lock($1) AS got', [PROMOTED_LOCK.key]);
    // Only the ELECTION holder ever takes PROMOTED, and both live and die with one session.
    if (!p.rows[0]?.got) throw new Error('the promoted-lease lock is held by another session');
    this.primary = true;
    this.stats.promotions++;
    this.opts.log.info({ extended: r.rowCount ?? 0, extendMs: this.opts.extendMs }, 'lease expiry role taken; every lease extended');
  }

  /** A query bounded by queryTimeoutMs (0: unbounded, for the standby's blocking lock wait). */
  private query<R extends pg.QueryResultRow = pg.QueryResultRow>(c: pg.Client, text: string, values: unknown[], timeoutMs = this.opts.queryTimeoutMs): Promise<pg.QueryResult<R>> {
    // node-postgres honours query_timeout per query; its typings only know it per client.
    const config = { text, values, ...(timeoutMs > 0 ? { query_timeout: timeoutMs } : {}) } as pg.QueryConfig;
    return c.query<R>(config);
  }

  private async connect(): Promise<pg.Client> {
    // The server notices a vanished holder (host or network gone) within ~11 s instead of the
    // kernel's default two hours, and frees the role (serverKeepalives; ignored on Unix sockets).
    let c: pg.Client | undefined;
    c = await connectPrimary(this.opts.target, {
      applicationName: `pgetcd lease expiry (${this.opts.name})`,
      serverKeepalives: true,
      onError: (err) => {
        // The pending query (if any) fails too; run() then reconnects.
        this.opts.log.debug({ err }, 'lease expiry session error');
        if (c && this.client === c) this.dropClient();
      },
    });
    this.client = c;
    return c;
  }

  private fail(err: unknown): void {
    if (this.primary) this.opts.log.warn({ err }, 'lease expiry role lost');
    else this.opts.log.warn({ err }, 'lease expiry session failed; retrying');
    this.dropClient();
  }

  /** Ends the session; the advisory locks go with it. */
  private dropClient(): void {
    this.primary = false;
    const c = this.client;
    this.client = undefined;
    if (c) c.end().catch(() => undefined);
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(this.sleeper?.timer);
        this.sleeper = undefined;
        resolve();
      };
      this.sleeper = { timer: setTimeout(done, ms), until: Date.now() + ms, resolve: done };
    });
  }

  private wake(): void {
    this.sleeper?.resolve();
  }
}
