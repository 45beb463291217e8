import type { Logger } from '../log.ts';
import type { StoreEvent } from '../store/types.ts';
import type { Feed } from './feed.ts';
import type { Hub, Watch, WatchSink } from './hub.ts';
import { responseBaseSize } from './size.ts';
import { DELETE, FILTER_NODELETE, FILTER_NOPUT, PUT, type FeedEvent, type KeyRange } from './types.ts';

/** A WatchCreateRequest, decoded (int64 ids stay decimal strings: clients may pick any int64). */
export interface CreateRequest {
  key: Buffer;
  range_end: Buffer;
  start_revision: number;
  progress_notify: boolean;
  filters: number[];
  prev_kv: boolean;
  watch_id: string;
  fragment: boolean;
}

export type SessionRequest =
  | { type: 'create'; create: CreateRequest }
  | { type: 'cancel'; watchId: string }
  | { type: 'progress' };

/** A WatchResponse before it gets a header: `revision` is the header's revision. */
export interface OutResponse {
  revision: number;
  watchId: string;
  created: boolean;
  canceled: boolean;
  compactRevision: number;
  cancelReason: string;
  fragment: boolean;
  events: StoreEvent[];
}

/** The transport under a session (the gRPC stream). */
export interface SessionSink {
  /**
   * Sends one response; `sent` runs once the transport has passed it on. Returns false when the
   * transport is full: the session then waits for `Session.drained()`.
   */
  write(r: OutResponse, sent: () => void): boolean;
}

export interface SessionOptions {
  /** etcd's --experimental-watch-progress-notify-interval (etcd raises it to at least 100 ms). */
  progressIntervalMs: number;
  /** Fragment and split limit (etcd: --max-request-bytes plus gRPC overhead). */
  maxResponseBytes: number;
  /** Bytes of responses a stream may hold (queued or unsent) before its watchers are canceled. */
  maxQueuedBytes: number;
  log: Logger;
  /**
   * Behaviours that follow --etcd-version (src/etcdversion.ts): no progress for a watcher whose
   * start is ahead of the store; a negative start revision refused; RequestProgress dropped
   * (not deferred) while a watcher is unsynced. Unset: etcd 3.6's behaviour.
   */
  etcd?: { noProgressBeforeStart: boolean; rejectNegativeWatchStart: boolean; dropProgressWhenUnsynced: boolean };
}

/** etcd's messages (mvcc/watcher.go, api/v3rpc/rpctypes). */
export const MSG_COMPACTED = 'etcdserver: mvcc: required revision has been compacted';
export const MSG_EMPTY_RANGE = 'mvcc: watcher range is empty';
export const MSG_DUPLICATE_ID = 'mvcc: duplicate watch ID provided on the WatchStream';
/** etcd's clientv3.InvalidWatchID. */
const INVALID_ID = '-1';
const MIN_PROGRESS_INTERVAL_MS = 100;

/** Why a request whose handling failed was answered as canceled (pgetcd's own text). */
export const MSG_REQUEST_FAILED = 'etcdserver: watch request failed on the server; watch again from the last revision received';

/**
 * Test-only fault injection: called while a request is handled ('start': before anything; for a
 * create, 'created': after its created response was queued). Undefined (one check) in production.
 */
export type RequestFault = (req: SessionRequest, stage: 'start' | 'created') => void;
let requestFault: RequestFault | undefined;
export function setRequestFaultForTests(f: RequestFault | undefined): void {
  requestFault = f;
}

export function slowStreamReason(limit: number): string {
  return `etcdserver: watch stream is too slow: more than ${limit} bytes of responses were waiting to be read; watch again from the last revision received`;
}

interface Queued {
  r: OutResponse;
  bytes: number;
  /** Events and progress notifications: dropped when a slow stream overflows. */
  data: boolean;
}

/** A catch-up waits for room while more than this share of the limit is queued. */
const CATCHUP_ROOM_SHARE = 4;

export interface SessionStats {
  responses: number;
  overflows: number;
}

class SessionWatcher implements WatchSink {
  handle: Watch | undefined;
  /** etcd's progress map: a tick sends a notification only if no events went out since the last tick. */
  progressDue = true;
  readonly progressNotify: boolean;
  readonly fragment: boolean;
  private readonly prevKv: boolean;
  private readonly noPut: boolean;
  private readonly noDelete: boolean;

  constructor(
    private readonly session: Session,
    readonly id: string,
    create: CreateRequest,
  ) {
    // Only flags are kept: a watcher is small (10,000 of them are common).
    this.progressNotify = create.progress_notify;
    this.fragment = create.fragment;
    this.prevKv = create.prev_kv;
    this.noPut = create.filters.includes(FILTER_NOPUT);
    this.noDelete = create.filters.includes(FILTER_NODELETE);
  }

  deliver(events: FeedEvent[], revision: number): void {
    const evs: StoreEvent[] = [];
    const sizes: number[] = [];
    const revs: number[] = [];
    const prev = this.prevKv;
    for (const e of events) {
      const t = e.event.type;
      if ((t === PUT && this.noPut) || (t === DELETE && this.noDelete)) continue;
      evs.push(prev ? e.event : e.bare);
      sizes.push(prev ? e.size : e.bareSize);
      revs.push(e.revision);
    }
    // etcd sends nothing when the filters leave no event.
    if (evs.length === 0) return;
    this.progressDue = false;
    // Live events must go now (or the stream is cut off); a catch-up paces itself on room().
    // (No handle yet: hub.add is delivering the first catch-up chunk.)
    const live = this.handle !== undefined && this.handle.state === 'synced';
    this.session.sendEvents(this, evs, sizes, revs, revision, live);
  }

  compacted(compactRevision: number): void {
    // etcd's compacted response carries no header revision (its WatchResponse.Revision is 0).
    this.session.sendControl({ ...blank(this.id, 0), canceled: true, compactRevision });
  }

  synced(): void {
    this.session.checkDeferredProgress();
  }

  canceled(reason: string): void {
    this.session.canceledByHub(this, reason);
  }

  writable(): Promise<void> | undefined {
    return this.session.room();
  }
}

function blank(watchId: string, revision: number): OutResponse {
  return { revision, watchId, created: false, canceled: false, compactRevision: 0, cancelReason: '', fragment: false, events: [] };
}

/**
 * One Watch stream, with etcd's semantics (api/v3rpc/watch.go): many watchers, requests handled
 * in order, a created response before any event of its watcher, client-chosen or automatic IDs,
 * cancel, progress (RequestProgress answered with watch_id -1 once every watcher is synced,
 * progress_notify ticks), fragments. Responses leave in one FIFO queue that counts its bytes;
 * a stream whose client stops reading is cut off at maxQueuedBytes instead of growing forever.
 */
export class Session {
  readonly stats: SessionStats = { responses: 0, overflows: 0 };
  private readonly watchers = new Map<string, SessionWatcher>();
  private nextId = 0;
  private readonly requests: Array<{ req: SessionRequest; ticket: number }> = [];
  private processing = false;
  private readonly out: Array<Queued | undefined> = [];
  private head = 0;
  /** Bytes queued here plus bytes handed to the transport and not yet sent. */
  private queuedBytes = 0;
  private writable = true;
  private deferredProgress = false;
  /** Watchers that may not be synced yet (checked lazily). */
  private readonly maybeUnsynced = new Set<SessionWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private roomWaiters: Array<() => void> = [];
  private readonly onAdvance = (): void => this.checkDeferredProgress();
  /** The watcher the create being handled made, and whether its created response was queued. */
  private creating: { watcher: SessionWatcher; announced: boolean } | undefined;

  constructor(
    private readonly hub: Hub,
    private readonly feed: Feed,
    private readonly sink: SessionSink,
    private readonly opts: SessionOptions,
  ) {}

  get watcherCount(): number {
    return this.watchers.size;
  }

  /** Takes a request; requests of a stream are handled one after another, in order. */
  handle(req: SessionRequest): void {
    if (this.closed) return;
    this.requests.push({ req, ticket: this.feed.mark() });
    if (!this.processing) void this.process();
  }

  /** The transport has room again. */
  drained(): void {
    this.writable = true;
    this.flush();
  }

  /** Frees everything; nothing is sent after this. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.hub.offAdvance(this.onAdvance);
    for (const w of this.watchers.values()) if (w.handle) this.hub.remove(w.handle);
    this.watchers.clear();
    this.maybeUnsynced.clear();
    this.out.length = 0;
    this.requests.length = 0;
    this.wakeRoom();
  }

  /** Undefined when the stream has room for a catch-up chunk, else a promise of room. */
  room(): Promise<void> | undefined {
    if (this.closed || this.queuedBytes <= this.opts.maxQueuedBytes / CATCHUP_ROOM_SHARE) return undefined;
    return new Promise<void>((resolve) => this.roomWaiters.push(resolve));
  }

  private wakeRoom(): void {
    if (this.roomWaiters.length === 0) return;
    if (!this.closed && this.queuedBytes > this.opts.maxQueuedBytes / CATCHUP_ROOM_SHARE) return;
    const ws = this.roomWaiters;
    this.roomWaiters = [];
    for (const f of ws) f();
  }

  private async process(): Promise<void> {
    this.processing = true;
    try {
      while (this.requests.length > 0 && !this.closed) {
        const { req, ticket } = this.requests.shift()!;
        try {
          if (req.type !== 'cancel') {
            // Creates and progress requests see every revision committed before they arrived.
            const p = this.feed.sync(ticket);
            if (p) await p;
            if (this.closed) return;
          }
          requestFault?.(req, 'start');
          switch (req.type) {
            case 'create': this.create(req.create); break;
            case 'cancel': this.cancel(req.watchId); break;
            case 'progress': this.progress(); break;
          }
        } catch (err) {
          // Every request gets an answer, and the ones queued behind it still run.
          this.opts.log.error({ err, request: req.type }, 'watch request failed; answered as canceled');
          if (!this.closed) this.failed(req);
        } finally {
          this.creating = undefined;
        }
      }
    } finally {
      this.processing = false;
    }
  }

  /**
   * Answers a request whose handling threw: the watchers it concerns are canceled with a reason
   * (a create that got no watcher is answered created+canceled with watch_id -1, like etcd's
   * refused creates), so the client watches again instead of waiting for an answer.
   */
  private failed(req: SessionRequest): void {
    const rev = this.hub.revision;
    const cancelOne = (id: string): void => {
      const w = this.watchers.get(id);
      if (w) this.drop(w);
      this.sendControl({ ...blank(id, rev), canceled: true, cancelReason: MSG_REQUEST_FAILED });
    };
    switch (req.type) {
      case 'create': {
        const c = this.creating;
        if (!c) {
          this.sendControl({ ...blank(INVALID_ID, rev), created: true, canceled: true, cancelReason: MSG_REQUEST_FAILED });
        } else if (!c.announced) {
          this.drop(c.watcher);
          this.sendControl({ ...blank(c.watcher.id, rev), created: true, canceled: true, cancelReason: MSG_REQUEST_FAILED });
        } else {
          cancelOne(c.watcher.id);
        }
        break;
      }
      case 'cancel':
        cancelOne(req.watchId);
        break;
      case 'progress':
        // The progress answer cannot be given: every watcher of the stream is canceled instead.
        this.deferredProgress = false;
        this.hub.offAdvance(this.onAdvance);
        for (const id of [...this.watchers.keys()]) cancelOne(id);
        break;
    }
    this.checkDeferredProgress();
  }

  /** The hub dropped a watcher it could not serve: tell the client why. */
  canceledByHub(w: SessionWatcher, reason: string): void {
    if (this.closed || this.watchers.get(w.id) !== w) return;
    this.watchers.delete(w.id);
    this.maybeUnsynced.delete(w);
    this.sendControl({ ...blank(w.id, this.hub.revision), canceled: true, cancelReason: reason });
    this.checkDeferredProgress();
  }

  /** Forgets a watcher, even a half-made one (removal errors are logged, not thrown). */
  private drop(w: SessionWatcher): void {
    this.watchers.delete(w.id);
    this.maybeUnsynced.delete(w);
    if (!w.handle) return;
    try {
      this.hub.remove(w.handle);
    } catch (err) {
      this.opts.log.error({ err }, 'removing a failed watcher failed');
    }
  }

  private create(c: CreateRequest): void {
    const rev = this.hub.revision;
    // etcd: an empty key means "\0", the smallest key.
    const key = c.key.length === 0 ? Buffer.from([0]) : c.key;
    if (c.start_revision < 0) {
      if (this.opts.etcd?.rejectNegativeWatchStart ?? true) {
        this.sendControl({ ...blank(INVALID_ID, rev), created: true, canceled: true, cancelReason: MSG_COMPACTED });
        return;
      }
      // Older etcd: below every revision, so canceled as compacted on a compacted store, and
      // watching from now on one that never was.
      c = { ...c, start_revision: this.hub.compactRevision > 0 ? 1 : 0 };
    }
    // range_end: empty = the key alone; "\0" = every key from key on.
    const end = c.range_end.length === 0 ? null : c.range_end.length === 1 && c.range_end[0] === 0 ? Buffer.alloc(0) : c.range_end;
    if (end !== null && end.length > 0 && Buffer.compare(key, end) >= 0) {
      this.sendControl({ ...blank(INVALID_ID, rev), created: true, canceled: true, cancelReason: MSG_EMPTY_RANGE });
      return;
    }
    let id: string;
    if (c.watch_id === '0') {
      while (this.watchers.has(String(this.nextId))) this.nextId++;
      id = String(this.nextId++);
    } else if (this.watchers.has(c.watch_id)) {
      this.sendControl({ ...blank(INVALID_ID, rev), created: true, canceled: true, cancelReason: MSG_DUPLICATE_ID });
      return;
    } else {
      id = c.watch_id;
    }
    const w = new SessionWatcher(this, id, c);
    this.watchers.set(id, w);
    this.creating = { watcher: w, announced: false };
    this.sendControl({ ...blank(id, rev), created: true });
    this.creating.announced = true;
    requestFault?.({ type: 'create', create: c }, 'created');
    const range: KeyRange = { key: key.toString('latin1'), end: end === null ? null : end.toString('latin1') };
    w.handle = this.hub.add({ range, startRevision: c.start_revision }, w);
    if (!this.progressReady(w.handle)) this.maybeUnsynced.add(w);
    if (c.progress_notify) this.startProgressTimer();
  }

  private cancel(id: string): void {
    const w = this.watchers.get(id);
    if (!w) return; // etcd: unknown id, no answer
    if (w.handle) this.hub.remove(w.handle);
    this.watchers.delete(id);
    this.maybeUnsynced.delete(w);
    this.sendControl({ ...blank(id, this.hub.revision), canceled: true });
    this.checkDeferredProgress();
  }

  /** RequestProgress: one response with watch_id -1 once every watcher of the stream is synced. */
  private progress(): void {
    if (this.deferredProgress) return; // one is already pending
    if (this.opts.etcd?.dropProgressWhenUnsynced) {
      // etcd 3.4.25+/3.5.8+: answered only if every watcher is synced right now, else dropped.
      for (const w of this.watchers.values()) if (!w.handle || !this.progressReady(w.handle)) return;
      if (this.watchers.size > 0) this.sendData(blank(INVALID_ID, this.hub.revision), responseBaseSize(0, ''));
      return;
    }
    this.deferredProgress = true;
    this.checkDeferredProgress();
  }

  /** Whether a watcher may get a progress notification (etcd's progressIfSync, per version). */
  private progressReady(h: Watch): boolean {
    return this.opts.etcd?.noProgressBeforeStart ?? true ? this.hub.isSynced(h) : this.hub.inSyncedGroup(h);
  }

  checkDeferredProgress(): void {
    if (!this.deferredProgress || this.closed) return;
    for (const w of this.maybeUnsynced) {
      if (w.handle && this.progressReady(w.handle)) this.maybeUnsynced.delete(w);
      else {
        // Wait for the feed to move (a watcher starting in the future) or for a catch-up.
        this.hub.onAdvance(this.onAdvance);
        return;
      }
    }
    this.hub.offAdvance(this.onAdvance);
    this.deferredProgress = false;
    // etcd sends nothing when the stream has no watcher.
    if (this.watchers.size > 0) this.sendData(blank(INVALID_ID, this.hub.revision), responseBaseSize(0, ''));
  }

  private startProgressTimer(): void {
    if (this.timer) return;
    const base = Math.max(this.opts.progressIntervalMs, MIN_PROGRESS_INTERVAL_MS);
    // etcd adds up to 10 % jitter so that streams created together do not tick together.
    const interval = base + Math.floor(Math.random() * base / 10);
    this.timer = setInterval(() => this.progressTick(), interval);
    this.timer.unref();
  }

  private progressTick(): void {
    for (const w of this.watchers.values()) {
      if (!w.progressNotify) continue;
      if (w.progressDue && w.handle && this.progressReady(w.handle)) {
        this.sendData(blank(w.id, this.hub.revision), responseBaseSize(0, ''));
      }
      w.progressDue = true;
    }
  }

  sendControl(r: OutResponse): void {
    this.enqueue({ r, bytes: responseBaseSize(r.compactRevision, r.cancelReason), data: false }, false);
  }

  private sendData(r: OutResponse, bytes: number, live = true): void {
    this.enqueue({ r, bytes, data: true }, live);
  }

  /**
   * Events for one watcher, every event up to `revision` included. One response normally; split
   * at revision boundaries when larger than the limit (a revision is never split), and a piece
   * that is still too large is fragmented like etcd does when the watcher asked for fragments.
   */
  sendEvents(w: SessionWatcher, evs: StoreEvent[], sizes: number[], revs: number[], revision: number, live: boolean): void {
    const limit = this.opts.maxResponseBytes;
    const base = responseBaseSize(0, '');
    let start = 0;
    let bytes = base;
    let i = 0;
    while (i < evs.length) {
      // The events of one revision: [i, j).
      let j = i;
      let group = 0;
      while (j < evs.length && revs[j] === revs[i]) group += sizes[j++]!;
      if (i > start && bytes + group > limit) {
        this.piece(w, evs, sizes, start, i, revs[i - 1]!, bytes, live);
        start = i;
        bytes = base;
      }
      bytes += group;
      i = j;
    }
    this.piece(w, evs, sizes, start, evs.length, revision, bytes, live);
  }

  private piece(w: SessionWatcher, evs: StoreEvent[], sizes: number[], from: number, to: number, revision: number, bytes: number, live: boolean): void {
    const limit = this.opts.maxResponseBytes;
    if (!w.fragment || bytes < limit || to - from < 2) {
      this.sendData({ ...blank(w.id, revision), events: evs.slice(from, to) }, bytes, live);
      return;
    }
    // etcd's sendFragments: fill each fragment until one more event would reach the limit.
    const base = responseBaseSize(0, '');
    let i = from;
    while (i < to) {
      let b = base + sizes[i]!;
      let j = i + 1;
      while (j < to && b + sizes[j]! < limit) b += sizes[j++]!;
      this.sendData({ ...blank(w.id, revision), events: evs.slice(i, j), fragment: j < to }, b, live);
      i = j;
    }
  }

  /** `live`: may overflow the stream (a catch-up waits for room instead). */
  private enqueue(q: Queued, live: boolean): void {
    if (this.closed) return;
    this.out.push(q);
    this.queuedBytes += q.bytes;
    this.flush();
    if (live && q.data && this.queuedBytes > this.opts.maxQueuedBytes) this.overflow();
  }

  private flush(): void {
    while (this.writable && this.head < this.out.length && !this.closed) {
      const q = this.out[this.head]!;
      this.out[this.head++] = undefined;
      this.stats.responses++;
      const ok = this.sink.write(q.r, () => {
        this.queuedBytes -= q.bytes;
        this.wakeRoom();
      });
      if (!ok) this.writable = false;
    }
    if (this.head === this.out.length) {
      this.out.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.out.length) {
      this.out.splice(0, this.head);
      this.head = 0;
    }
  }

  /**
   * The client is not reading. Its queued events and progress notifications are dropped and
   * every watcher of the stream is canceled with a reason; the client can watch again from the
   * last revision it received. Other streams and the writer never wait for this one.
   */
  private overflow(): void {
    this.stats.overflows++;
    this.opts.log.warn({ queuedBytes: this.queuedBytes, limit: this.opts.maxQueuedBytes, watchers: this.watchers.size },
      'watch stream is not reading; canceling its watchers');
    const kept: Queued[] = [];
    for (let k = this.head; k < this.out.length; k++) {
      const q = this.out[k]!;
      if (q.data) this.queuedBytes -= q.bytes;
      else kept.push(q);
    }
    this.out.length = 0;
    this.head = 0;
    this.out.push(...kept);
    this.cancelAll(slowStreamReason(this.opts.maxQueuedBytes), 0);
  }

  /**
   * Cancels every watcher of the stream with a reason (and a compact revision, when clients
   * must re-list: etcd clients treat a compacted watch as "list again"); the stream stays open.
   */
  cancelAll(reason: string, compactRevision: number): void {
    const rev = this.hub.revision;
    for (const w of this.watchers.values()) {
      if (w.handle) this.hub.remove(w.handle);
      this.sendControl({ ...blank(w.id, rev), canceled: true, cancelReason: reason, compactRevision });
    }
    this.watchers.clear();
    this.maybeUnsynced.clear();
    this.deferredProgress = false;
    this.hub.offAdvance(this.onAdvance);
  }
}
