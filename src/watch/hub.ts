import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';
import { KeyIndex } from './keyindex.ts';
import { readLog, readRange } from './logread.ts';
import { Ring } from './ring.ts';
import { inKeyRange, type FeedEvent, type KeyRange, type LogBatch } from './types.ts';

/** What a watcher wants: a key range and where to start (0 = after the current revision). */
export interface WatchSpec {
  range: KeyRange;
  startRevision: number;
}

/** Where the hub sends a watcher's events. Calls are synchronous and in revision order. */
export interface WatchSink {
  /** Events (in order) for the watcher; every matching event up to `revision` has now been given. */
  deliver(events: FeedEvent[], revision: number): void;
  /** The watcher's start fell below the compact revision: it gets no more events. */
  compacted(compactRevision: number): void;
  /** The watcher has caught up and now follows the live stream. */
  synced(): void;
  /** Catch-up waits on this before each chunk: resolves when the stream has room again. */
  writable(): Promise<void> | undefined;
  /** The hub cannot give the watcher every event (see MSG_FEED_GAP): it gets no more events. */
  canceled(reason: string): void;
}

/**
 * Why synced watchers are canceled when the feed skipped revisions that can no longer be read
 * (compacted, or the database kept failing): pgetcd's own text. The client watches again from
 * the last revision it received and catches up from history, or learns it was compacted.
 */
export const MSG_FEED_GAP = 'etcdserver: watch missed revisions on the server that cannot be read back; watch again from the last revision received';
/** Attempts at reading a gap back before its watchers are canceled. */
const GAP_READ_ATTEMPTS = 4;

type State = 'synced' | 'unsynced' | 'compacted' | 'removed';

export class Watch {
  state: State = 'unsynced';
  /** Unsynced: the next revision to deliver. Synced: the lowest revision it accepts. */
  nextRev = 0;
  constructor(readonly spec: WatchSpec, readonly sink: WatchSink) {}
}

export interface HubOptions {
  sql: Sql;
  log: Logger;
  ringEvents: number;
  ringBytes: number;
  /** Catch-up reads running at once (they share the pool with the writer and readers). */
  catchupConcurrency: number;
  /**
   * Runs a catch-up read on a hot standby when one is fresh; undefined means read `sql` (the
   * primary). Absent: every read goes to the primary.
   */
  standbyRead?: <T>(f: (sql: Sql) => Promise<T>, revisionOf: (t: T) => number) => Promise<T | undefined>;
  /** Rows per catch-up read. */
  catchupRows: number;
  /** Bytes of events handed to a catching-up watcher at a time (then it waits for room). */
  catchupChunkBytes: number;
}

export interface HubStats {
  batches: number;
  deliveries: number;
  ringCatchups: number;
  dbCatchupReads: number;
  dbCatchupErrors: number;
  compactedWatchers: number;
  /** Batches that did not follow on from the hub's revision, and how they were handled. */
  gaps: number;
  gapsFilled: number;
  gapWatchersCanceled: number;
  overlaps: number;
}

/**
 * The in-memory fan-out, after etcd's watchable store: synced watchers (caught up with the feed)
 * sit in a key index and receive each batch as it arrives; unsynced watchers (starting in the
 * past) catch up on their own — from the ring when it still holds their start, else from kv_log
 * in bounded reads — and join the synced group when they reach the feed's revision. JavaScript
 * runs one thing at a time, so that move happens between two batches: no gap, no duplicate.
 */
export class Hub {
  readonly stats: HubStats = { batches: 0, deliveries: 0, ringCatchups: 0, dbCatchupReads: 0, dbCatchupErrors: 0, compactedWatchers: 0, gaps: 0, gapsFilled: 0, gapWatchersCanceled: 0, overlaps: 0 };
  /** Every event up to this revision has been handed to the synced watchers. */
  revision = 0;
  compactRevision = 0;
  readonly ring: Ring;
  private readonly synced = new KeyIndex<Watch>();
  private readonly unsynced = new Set<Watch>();
  private readonly queue: Array<() => void> = [];
  private active = 0;
  private stopped = false;
  private readonly advanceListeners = new Set<() => void>();
  /** Set while a gap is read back: batches that arrive meanwhile wait here, in order. */
  private held: LogBatch[] | undefined;

  constructor(private readonly opts: HubOptions) {
    this.ring = new Ring(0, opts.ringEvents, opts.ringBytes);
  }

  get syncedCount(): number {
    return this.synced.size;
  }

  get unsyncedCount(): number {
    return this.unsynced.size;
  }

  init(revision: number, compactRevision: number): void {
    this.revision = revision;
    this.compactRevision = compactRevision;
    this.ring.reset(revision);
  }

  stop(): void {
    this.stopped = true;
  }

  /** Calls f after each batch until offAdvance (used by deferred progress requests). */
  onAdvance(f: () => void): void {
    this.advanceListeners.add(f);
  }

  offAdvance(f: () => void): void {
    this.advanceListeners.delete(f);
  }

  /**
   * A batch from the feed: every event in (b.from, b.to]. The feed delivers contiguous batches;
   * one that does not follow on never reaches a watcher as a hole or a duplicate: revisions
   * already delivered are dropped, and missing ones are read back from kv_log first (batches
   * arriving meanwhile wait); when they cannot be read, the synced watchers are canceled.
   */
  onBatch(b: LogBatch): void {
    this.stats.batches++;
    if (this.held) {
      this.held.push(b);
      return;
    }
    if (b.from < this.revision) {
      this.stats.overlaps++;
      this.opts.log.error({ from: b.from, to: b.to, hub: this.revision }, 'watch feed batch overlaps revisions already delivered; dropping them');
      if (b.to <= this.revision) {
        this.compactRevision = Math.max(this.compactRevision, b.compactRevision);
        return;
      }
      b = { ...b, from: this.revision, events: b.events.filter((e) => e.revision > this.revision) };
    } else if (b.from > this.revision) {
      this.stats.gaps++;
      this.opts.log.error({ from: b.from, hub: this.revision }, 'watch feed batch skips revisions; reading them back');
      this.held = [b];
      void this.fillGap(this.revision, b.from);
      return;
    }
    this.deliverBatch(b);
  }

  /** Reads (from, to] back from kv_log and delivers it, then the batches held meanwhile. */
  private async fillGap(from: number, to: number): Promise<void> {
    const filled: LogBatch[] = [];
    let at = from;
    let attempt = 0;
    while (at < to && !this.stopped) {
      try {
        const r = await readLog(this.opts.sql, at, Math.min(to - at, this.opts.catchupRows));
        // Physical compaction may have removed rows at or below the compact revision.
        if (r.compactRevision > from) throw new Error(`revisions (${from}, ${to}] were compacted (at ${r.compactRevision})`);
        if (r.coveredTo <= at) throw new Error(`kv_log ends at ${r.coveredTo}, before ${to}`);
        const end = Math.min(r.coveredTo, to);
        filled.push({ from: at, to: end, storeRevision: r.storeRevision, compactRevision: r.compactRevision, events: r.events.filter((e) => e.revision <= end) });
        at = end;
        attempt = 0;
      } catch (err) {
        if (++attempt < GAP_READ_ATTEMPTS && !/compacted/.test(String(err))) {
          this.opts.log.warn({ err, from: at, to }, 'reading a watch feed gap back failed; retrying');
          await new Promise<void>((resolve) => setTimeout(resolve, 100 * 2 ** attempt).unref());
          continue;
        }
        this.opts.log.error({ err, from, to }, 'a watch feed gap cannot be read back; canceling synced watchers');
        this.cancelSynced(MSG_FEED_GAP);
        this.ring.reset(to);
        this.revision = to;
        break;
      }
    }
    if (this.stopped) return;
    if (at >= to) this.stats.gapsFilled++;
    if (at >= to) for (const f of filled) this.deliverBatch(f);
    const held = this.held ?? [];
    this.held = undefined;
    for (const b of held) this.onBatch(b);
  }

  /** Cancels every synced watcher (they would otherwise miss events). */
  private cancelSynced(reason: string): void {
    const ws: Watch[] = [];
    this.synced.forEach((w) => ws.push(w));
    for (const w of ws) {
      this.synced.remove(w, w.spec.range);
      w.state = 'removed';
      this.stats.gapWatchersCanceled++;
      w.sink.canceled(reason);
    }
  }

  private deliverBatch(b: LogBatch): void {
    this.compactRevision = b.compactRevision;
    this.ring.append(b.events, b.to);
    this.revision = b.to;
    if (b.events.length > 0 && this.synced.size > 0) this.fanOut(b);
    for (const f of [...this.advanceListeners]) f();
  }

  private fanOut(b: LogBatch): void {
    const per = new Map<Watch, FeedEvent[]>();
    for (const ev of b.events) {
      this.synced.forEachMatch(ev.keyStr, (w) => {
        if (ev.revision < w.nextRev) return; // a watcher that starts in the future
        const l = per.get(w);
        if (l) l.push(ev);
        else per.set(w, [ev]);
      });
    }
    for (const [w, evs] of per) {
      if (w.state !== 'synced') continue; // removed by an earlier delivery (a stream overflowed)
      this.stats.deliveries++;
      w.sink.deliver(evs, b.to);
    }
  }

  /**
   * Adds a watcher. A start of 0 or after the current revision joins the live stream at once;
   * an earlier one catches up first, in chunks, as fast as its stream takes them.
   */
  add(spec: WatchSpec, sink: WatchSink): Watch {
    const w = new Watch(spec, sink);
    if (spec.startRevision === 0 || spec.startRevision > this.revision) {
      w.state = 'synced';
      w.nextRev = Math.max(this.revision + 1, spec.startRevision);
      this.synced.add(w, spec.range);
      return w;
    }
    w.nextRev = spec.startRevision;
    this.unsynced.add(w);
    void this.catchUp(w);
    return w;
  }

  remove(w: Watch): void {
    if (w.state === 'synced') this.synced.remove(w, w.spec.range);
    else if (w.state === 'unsynced') this.unsynced.delete(w);
    w.state = 'removed';
  }

  /** In the synced group (etcd before 3.5.22 sent progress to every such watcher). */
  inSyncedGroup(w: Watch): boolean {
    return w.state === 'synced';
  }

    /** etcd's test for progress: synced, and the store has reached the watcher's start. */
  isSynced(w: Watch): boolean {
    return w.state === 'synced' && this.revision >= w.spec.startRevision;
  }

  /**
   * One synchronous step of a catch-up: compaction check, joining the live stream, or one chunk
   * from the ring. Returns 'db' when the ring no longer holds w's next revision. Nothing can
   * happen between the checks and the delivery, so the move to the synced group leaves no gap.
   */
  private step(w: Watch): 'done' | 'more' | 'db' {
    if (w.state !== 'unsynced' || this.stopped) return 'done';
    if (w.nextRev < this.compactRevision) {
      this.compact(w, this.compactRevision);
      return 'done';
    }
    if (w.nextRev > this.revision) {
      this.unsynced.delete(w);
      w.state = 'synced';
      this.synced.add(w, w.spec.range);
      w.sink.synced();
      return 'done';
    }
    if (!this.ring.covers(w.nextRev)) return 'db';
    this.stats.ringCatchups++;
    const r = this.ring.scan(w.nextRev, (e) => inKeyRange(w.spec.range, e.keyStr), this.opts.catchupChunkBytes);
    w.nextRev = r.to + 1;
    if (r.events.length > 0) w.sink.deliver(r.events, r.to);
    return 'more';
  }

  private compact(w: Watch, compactRevision: number): void {
    this.unsynced.delete(w);
    w.state = 'compacted';
    this.stats.compactedWatchers++;
    w.sink.compacted(compactRevision);
  }

  /** Catch-up reads from kv_log share a few pool connections: wait for a slot. */
  private async dbSlot(): Promise<void> {
    if (this.active < this.opts.catchupConcurrency) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.queue.push(resolve));
  }

  private releaseSlot(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.active--;
  }

  private async catchUp(w: Watch): Promise<void> {
    let backoff = 0;
    for (;;) {
      const room = w.sink.writable();
      if (room) await room;
      const s = this.step(w);
      if (s === 'done') return;
      if (s === 'more') continue;
      await this.dbSlot();
      let r;
      try {
        if (w.state !== 'unsynced' || this.stopped) return;
        // Still not in the ring? (It may have caught up while waiting for the slot.)
        if (w.nextRev > this.revision || this.ring.covers(w.nextRev)) continue;
        this.stats.dbCatchupReads++;
        const { key, end } = w.spec.range;
        const k = Buffer.from(key, 'latin1');
        const e = end === null ? null : Buffer.from(end, 'latin1');
        const from = w.nextRev;
        const to = this.revision;
        // A standby that has not replayed `from` yet covers nothing: the primary reads instead.
        const onStandby = await this.opts.standbyRead?.((sql) => readRange(sql, k, e, from, to, this.opts.catchupRows), (x) => x.storeRevision);
        r = onStandby && onStandby.coveredTo >= from ? onStandby : await readRange(this.opts.sql, k, e, from, to, this.opts.catchupRows);
        backoff = 0;
      } catch (err) {
        this.stats.dbCatchupErrors++;
        backoff = Math.min(Math.max(backoff * 2, 100), 5000);
        this.opts.log.warn({ err, retryInMs: backoff }, 'watch catch-up read failed; retrying');
        // A retry timer must not keep a stopping process alive.
        await new Promise<void>((resolve) => setTimeout(resolve, backoff).unref());
        continue;
      } finally {
        this.releaseSlot();
      }
      if (w.state !== 'unsynced' || this.stopped) return;
      if (w.nextRev < r.compactRevision) {
        this.compact(w, r.compactRevision);
        return;
      }
      w.nextRev = r.coveredTo + 1;
      if (r.events.length > 0) w.sink.deliver(r.events, r.coveredTo);
    }
  }
}
