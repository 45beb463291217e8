import type { Sql } from '../db/sql.ts';
import type { PgTarget } from '../db/target.ts';
import type { Logger } from '../log.ts';
import { Listener } from './listen.ts';
import { readLog } from './logread.ts';
import type { FeedEvent, LogBatch } from './types.ts';

export const CHANNEL = 'pgetcd_kv';
/** application_name of the LISTEN connection, to find it in pg_stat_activity. */
export const LISTEN_APPLICATION_NAME = 'pgetcd-watch';

export interface FeedOptions {
  sql: Sql;
  target: PgTarget;
  log: Logger;
  /** Most revisions read by one query. */
  window: number;
  /** Receives every batch, in revision order, without gaps. */
  onBatch: (b: LogBatch) => void;
  /** Told the revision of every notification (someone committed it). */
  onNotify?: (revision: number) => void;
  /**
   * True while this instance's writer has a commit in flight. A notification that arrives then
   * is most likely that commit's own, which committed() will deliver without a read: it waits
   * for settled() instead of starting a read.
   */
  localBusy?: () => boolean;
  /** Told of each batch handed to onBatch: its events, and ms since the notification it answers (if any). */
  onDelivered?: (events: number, lagMs?: number) => void;
  /** Liveness check of the LISTEN connection (ms; a `SELECT 1`). */
  livenessCheckMs: number;
  /**
   * Checks a read's store revision against what this instance already served (taken before the
   * read: see RevisionGuard); throws when the database went back in time.
   */
  guard?: { readonly served: number; check(storeRevision: number, floor: number): void };
  /** The LISTEN connection was lost (the database may be failing over). */
  onLost?: (err: unknown) => void;
}

export interface FeedStats {
  notifications: number;
  localCommits: number;
  /** Local commits delivered from the writer's rows, without a read. */
  localDeliveries: number;
  reads: number;
  readErrors: number;
  events: number;
  reconnects: number;
}

/**
 * Test-only fault injection into the read path: given the revision a read would continue from,
 * returns the one it reads from instead (a later one makes a real gap, an earlier one a real
 * overlap). Undefined (one check per read) in production.
 */
export type ReadFault = (after: number) => number | Promise<number>;
let readFault: ReadFault | undefined;
export function setReadFaultForTests(f: ReadFault | undefined): void {
  readFault = f;
}

interface Waiter {
  /** Index of the first read that satisfies this waiter. */
  after: number;
  resolve: () => void;
}

/**
 * The change feed of one instance: one LISTEN connection (listen.ts, which reconnects by itself)
 * on channel pgetcd_kv, and a reader of kv_log. A notification, a local commit or a reconnect
 * only nudges the reader; the reader always continues from the last revision it delivered, so a
 * notification lost while the connection was down loses nothing. There is no timer-driven read.
 *
 * Reads are single-flight: nudges that arrive during a read make one more read afterwards.
 */
export class Feed {
  readonly stats: FeedStats = { notifications: 0, localCommits: 0, localDeliveries: 0, reads: 0, readErrors: 0, events: 0, reconnects: 0 };
  /** The last revision delivered to onBatch. */
  revision = 0;
  compactRevision = 0;
  private wanted = 0;
  /** The highest notified revision held back while a local commit was in flight. */
  private deferred = 0;
  private reading = false;
  private readsStarted = 0;
  /** Index of the latest read after which the feed had delivered everything that read saw. */
  private caughtUpRead = 0;
  private waiters: Waiter[] = [];
  private listener: Listener | undefined;
  private started = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay = 0;
  /** When the LISTEN connection went down (Date.now()); undefined while it is up. */
  private downSince: number | undefined = Date.now();
  /** The oldest notification of a revision not yet delivered, and when it came (for onDelivered). */
  private notified: { revision: number; at: number } | undefined;

  constructor(private readonly opts: FeedOptions) {}

  async start(): Promise<void> {
    const listener = new Listener({
      target: this.opts.target,
      channel: CHANNEL,
      applicationName: LISTEN_APPLICATION_NAME,
      log: this.opts.log,
      livenessCheckMs: this.opts.livenessCheckMs,
      onNotify: (payload) => {
        this.stats.notifications++;
        // A payload that is not a revision (a compaction's "compact:<rev>") means: read.
        const r = /^\d+$/.test(payload) ? Number(payload) : Infinity;
        if (r !== Infinity) this.opts.onNotify?.(r);
        if (r !== Infinity && r > this.revision && !this.notified && this.opts.onDelivered) this.notified = { revision: r, at: performance.now() };
        if (r !== Infinity && this.opts.localBusy?.()) {
          this.deferred = Math.max(this.deferred, r);
          return;
        }
        this.poke(r);
      },
      onLost: (err) => {
        this.downSince ??= Date.now();
        this.stats.reconnects++;
        this.opts.onLost?.(err);
      },
      onReconnected: () => {
        this.downSince = undefined;
        // Notifications sent while the connection was down are lost: read from where we are.
        this.opts.log.info({ revision: this.revision }, 'LISTEN connection up; reading what was missed');
        // The database is back: a read waiting out its backoff goes now.
        if (this.retryTimer) {
          clearTimeout(this.retryTimer);
          this.retryTimer = undefined;
          this.retryDelay = 0;
        }
        this.poke(Infinity);
      },
    });
    this.listener = listener;
    await listener.start();
    this.downSince = undefined;
    // LISTEN is active: every later commit notifies us, so starting at the revision read now
    // leaves no gap.
    const first = await readLog(this.opts.sql, 0, 0);
    this.revision = first.storeRevision;
    this.compactRevision = first.compactRevision;
    this.wanted = this.revision;
    this.started = true;
  }

  /** How long the LISTEN connection has been down (ms); undefined while it is up. */
  get downForMs(): number | undefined {
    return this.downSince === undefined ? undefined : Date.now() - this.downSince;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
    const l = this.listener;
    this.listener = undefined;
    if (l) await l.stop();
  }

  /** A commit at `revision` happened (Infinity: something may have happened). */
  poke(revision: number): void {
    if (!this.started) return; // start() reads the revision after LISTEN is active
    if (revision <= this.wanted && revision !== Infinity) return;
    this.wanted = Math.max(this.wanted, revision === Infinity ? this.revision + 1 : revision);
    this.run();
  }

  /**
   * The local writer committed revisions (from, to]. When they follow on from what the feed
   * delivered and `events` can build them (see localEvents), they are delivered at once without
   * reading kv_log; otherwise this is a nudge to read.
   */
  committed(from: number, to: number, events: () => FeedEvent[] | undefined): void {
    this.stats.localCommits++;
    if (this.started && !this.stopped && !this.reading && !this.retryTimer && this.revision === from) {
      const evs = events();
      if (evs) {
        this.stats.localDeliveries++;
        this.stats.events += evs.length;
        this.revision = to;
        this.wanted = Math.max(this.wanted, to);
        this.opts.onBatch({ from, to, storeRevision: to, compactRevision: this.compactRevision, events: evs });
        this.delivered(to, evs.length);
        return;
      }
    }
    this.poke(to);
  }

  /** The local writer finished a commit: read what was notified meanwhile, if not delivered. */
  settled(): void {
    if (this.deferred === 0) return;
    const d = this.deferred;
    this.deferred = 0;
    this.poke(d);
  }

  /** A ticket for sync(): taken when a request arrives. */
  mark(): number {
    return this.readsStarted;
  }

  /**
   * Resolves once the feed has delivered every revision committed before `mark()` returned
   * `ticket` (a read that started after it has completed and been followed up to its meta
   * revision); undefined when that is already true.
   */
  sync(ticket: number): Promise<void> | undefined {
    if (this.caughtUpRead > ticket || this.stopped || !this.started) return undefined;
    return new Promise<void>((resolve) => {
      // The loop reads while a waiter waits; raising `wanted` here would cost one more read
      // after the one that satisfies it.
      this.waiters.push({ after: ticket, resolve });
      this.run();
    });
  }

  private run(): void {
    if (this.reading || this.stopped || this.retryTimer) return;
    this.reading = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    // `reading` drops in the same turn as the loop's last check of its condition: a sync() woken
    // by this read runs after that turn, and finding the feed still "reading" it would wait for
    // a read that never comes.
    try {
      while (!this.stopped && (this.wanted > this.revision || this.waiters.length > 0)) {
        const index = ++this.readsStarted;
        let batch;
        let from = this.revision;
        try {
          this.stats.reads++;
          const floor = this.opts.guard?.served ?? 0;
          if (readFault) from = await readFault(from);
          batch = await readLog(this.opts.sql, from, this.opts.window);
          // The database went back behind what was delivered (async failover): never move back.
          this.opts.guard?.check(batch.storeRevision, Math.max(floor, this.revision));
          this.retryDelay = 0;
        } catch (err) {
          this.stats.readErrors++;
          this.retryDelay = Math.min(Math.max(this.retryDelay * 2, 100), 5000);
          this.opts.log.warn({ err, retryInMs: this.retryDelay }, 'reading kv_log failed; retrying');
          this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.run(); }, this.retryDelay);
          return;
        }
        if (this.stopped) return;
        const compactChanged = batch.compactRevision !== this.compactRevision;
        this.revision = batch.coveredTo;
        this.compactRevision = batch.compactRevision;
        this.wanted = Math.max(this.wanted, batch.storeRevision);
        this.stats.events += batch.events.length;
        // Compaction writes no kv_log row (so no notification): reads carry it to the hub.
        if (batch.coveredTo > from || compactChanged) {
          this.opts.onBatch({
            from, to: batch.coveredTo, storeRevision: batch.storeRevision,
            compactRevision: batch.compactRevision, events: batch.events,
          });
          this.delivered(batch.coveredTo, batch.events.length);
        }
        if (this.revision >= batch.storeRevision) this.caughtUpRead = index;
        this.wakeWaiters();
      }
    } finally {
      this.reading = false;
    }
  }

  private delivered(to: number, events: number): void {
    const report = this.opts.onDelivered;
    if (!report) return;
    const n = this.notified;
    if (n && to >= n.revision) {
      this.notified = undefined;
      report(events, performance.now() - n.at);
    } else {
      report(events);
    }
  }

  private wakeWaiters(): void {
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (this.caughtUpRead > w.after) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }
}
