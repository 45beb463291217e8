import type { KeyRange } from './types.ts';

interface Interval<W> {
  start: string;
  /** '' = no end (from-key). */
  end: string;
  members: Set<W>;
}

/**
 * Which watchers care about a key, without scanning every watcher: single-key watchers sit in
 * a map by key; range watchers are grouped by their exact [start, end) and the distinct ranges
 * form an interval tree (a sorted array viewed as a balanced tree, each node holding the largest
 * end of its subtree), so a lookup costs O(log n + matches). The tree is rebuilt lazily, on the
 * first lookup after the set of distinct ranges changed. Keys are latin1 strings: string order
 * equals etcd's byte order.
 */
export class KeyIndex<W> {
  private readonly single = new Map<string, Set<W>>();
  private readonly ranges = new Map<string, Interval<W>>();
  private sorted: Array<Interval<W>> = [];
  /** maxEnd[i]: the largest end in the subtree rooted at i (INF for a from-key range). */
  private maxEnd: string[] = [];
  private dirty = false;
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(w: W, r: KeyRange): void {
    this.count++;
    if (r.end === null) {
      let s = this.single.get(r.key);
      if (!s) this.single.set(r.key, (s = new Set()));
      s.add(w);
      return;
    }
    const id = rangeId(r);
    let iv = this.ranges.get(id);
    if (!iv) {
      iv = { start: r.key, end: r.end, members: new Set() };
      this.ranges.set(id, iv);
      this.dirty = true;
    }
    iv.members.add(w);
  }

  remove(w: W, r: KeyRange): boolean {
    if (r.end === null) {
      const s = this.single.get(r.key);
      if (!s || !s.delete(w)) return false;
      if (s.size === 0) this.single.delete(r.key);
      this.count--;
      return true;
    }
    const id = rangeId(r);
    const iv = this.ranges.get(id);
    if (!iv || !iv.members.delete(w)) return false;
    if (iv.members.size === 0) {
      this.ranges.delete(id);
      this.dirty = true;
    }
    this.count--;
    return true;
  }

  /** Calls f for every watcher (f must not change the index). */
  forEach(f: (w: W) => void): void {
    for (const s of this.single.values()) for (const w of s) f(w);
    for (const iv of this.ranges.values()) for (const w of iv.members) f(w);
  }

  /** Calls f for every watcher whose range holds key. */
  forEachMatch(key: string, f: (w: W) => void): void {
    const s = this.single.get(key);
    if (s) for (const w of s) f(w);
    if (this.ranges.size === 0) return;
    if (this.dirty) this.rebuild();
    this.stab(0, this.sorted.length - 1, key, f);
  }

  private stab(lo: number, hi: number, key: string, f: (w: W) => void): void {
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const m = this.maxEnd[mid]!;
      if (m <= key) return; // every interval here ends at or before key
      this.stab(lo, mid - 1, key, f);
      const iv = this.sorted[mid]!;
      if (iv.start > key) return; // this one and everything to its right start after key
      if (iv.end === '' || key < iv.end) for (const w of iv.members) f(w);
      lo = mid + 1;
    }
  }

  private rebuild(): void {
    this.sorted = [...this.ranges.values()].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    this.maxEnd = new Array<string>(this.sorted.length);
    this.fill(0, this.sorted.length - 1);
    this.dirty = false;
  }

  private fill(lo: number, hi: number): string | undefined {
    if (lo > hi) return undefined;
    const mid = (lo + hi) >>> 1;
    let m = endOf(this.sorted[mid]!);
    const l = this.fill(lo, mid - 1);
    const r = this.fill(mid + 1, hi);
    if (l !== undefined && l > m) m = l;
    if (r !== undefined && r > m) m = r;
    this.maxEnd[mid] = m;
    return m;
  }
}

/** "No end": latin1 keys hold only chars up to \u00ff, so this sorts after every key. */
const INF = '\uffff';

function endOf<W>(iv: Interval<W>): string {
  return iv.end === '' ? INF : iv.end;
}

function rangeId(r: KeyRange): string {
  // A separator that cannot be confused: the length of the start key.
  return `${r.key.length}:${r.key}${r.end}`;
}
