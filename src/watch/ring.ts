import type { FeedEvent } from './types.ts';

/**
 * The most recent events of this instance, so that a watcher starting a little in the past (or
 * catching up) does not query the database. Holds every event with revision in (floor, top];
 * eviction drops whole revisions from the old end, so coverage is always a contiguous range.
 */
export class Ring {
  private events: FeedEvent[] = [];
  /** Each key's newest held event. */
  private latest = new Map<string, FeedEvent>();
  private head = 0;
  private bytes = 0;
  /** Every event with revision > floor and <= top is held. */
  floor: number;
  top: number;

  constructor(revision: number, private readonly maxEvents: number, private readonly maxBytes: number) {
    this.floor = revision;
    this.top = revision;
  }

  get length(): number {
    return this.events.length - this.head;
  }

  get byteSize(): number {
    return this.bytes;
  }

  /** Appends the events of (top, to]; they must follow on from top. */
  append(events: FeedEvent[], to: number): void {
    if (to <= this.top) return;
    for (const e of events) {
      this.events.push(e);
      this.latest.set(e.keyStr, e);
      this.bytes += e.size;
    }
    this.top = to;
    this.evict();
  }

  /** Forgets everything and restarts empty at revision (after a gap the ring cannot bridge). */
  reset(revision: number): void {
    this.events = [];
    this.latest = new Map();
    this.head = 0;
    this.bytes = 0;
    this.floor = revision;
    this.top = revision;
  }

  /** The newest held event of a key (latin1), if the ring still holds one. */
  last(keyStr: string): FeedEvent | undefined {
    return this.latest.get(keyStr);
  }

  /** True when every event from revision `from` up to top is held. */
  covers(from: number): boolean {
    return from > this.floor && from <= this.top + 1;
  }

  /**
   * The held events with revision >= from that `match` accepts, stopping at a revision boundary
   * once about maxBytes were collected. `to`: every event up to it was looked at (call only when
   * covers(from)).
   */
  scan(from: number, match: (e: FeedEvent) => boolean, maxBytes: number): { events: FeedEvent[]; to: number } {
    let lo = this.head;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.events[mid]!.revision < from) lo = mid + 1;
      else hi = mid;
    }
    const out: FeedEvent[] = [];
    let bytes = 0;
    for (let i = lo; i < this.events.length; i++) {
      const e = this.events[i]!;
      if (bytes >= maxBytes && e.revision !== out[out.length - 1]!.revision) return { events: out, to: e.revision - 1 };
      if (match(e)) {
        out.push(e);
        bytes += e.size;
      }
    }
    return { events: out, to: this.top };
  }

  private evict(): void {
    while (this.length > 0 && (this.length > this.maxEvents || this.bytes > this.maxBytes)) {
      // Drop the oldest revision whole.
      const rev = this.events[this.head]!.revision;
      while (this.head < this.events.length && this.events[this.head]!.revision === rev) {
        const e = this.events[this.head]!;
        this.bytes -= e.size;
        if (this.latest.get(e.keyStr) === e) this.latest.delete(e.keyStr);
        this.head++;
      }
      this.floor = rev;
    }
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }
}
