/**
 * Items named by latin1 key strings, kept in byte order of their keys for range lookups, updated
 * lazily: items that come and go are collected, and merged into the ordered array only when an
 * ordered view is asked for (a range), or when enough have piled up. A write-heavy load that
 * never lists (new keys arriving in every batch) then costs a Set insertion per key instead of
 * an array splice over every key; a list after writes pays one merge, O(n + m log m) for m
 * changes over n keys. Items are told apart by identity: at most one present item per key.
 */

/** Up to this many pending changes are spliced in one by one; more are merged in one pass. */
const SPLICE_MAX = 64;
/** Pending changes are merged once they exceed both this and an eighth of the keys (amortized O(log m) each). */
const PENDING_MIN = 1024;

export interface Keyed {
  readonly k: string;
}

export class SortedKeys<T extends Keyed> {
  private sorted: T[] = [];
  /** Items present but not yet in `sorted`. */
  private readonly added = new Set<T>();
  /** Items still in `sorted` that are gone. */
  private readonly removed = new Set<T>();

  /** Starts over with `items`, which must already be in byte order of their keys. */
  reset(items: T[]): void {
    this.sorted = items;
    this.added.clear();
    this.removed.clear();
  }

  /** Number of items present. */
  get size(): number {
    return this.sorted.length + this.added.size - this.removed.size;
  }

  /** An item that was not present now is (no other present item has its key). */
  add(t: T): void {
    if (!this.removed.delete(t)) this.added.add(t);
    this.maybeSettle();
  }

  /** An item that was present is gone. */
  remove(t: T): void {
    if (!this.added.delete(t)) this.removed.add(t);
    this.maybeSettle();
  }

  /** Every present item in key order. The array is the caller's to read until the next change. */
  ordered(): readonly T[] {
    this.settle();
    return this.sorted;
  }

  /** Index in ordered() of the first item whose key is >= k. */
  lowerBound(k: string): number {
    this.settle();
    return lowerBound(this.sorted, k);
  }

  private maybeSettle(): void {
    const pending = this.added.size + this.removed.size;
    if (pending > PENDING_MIN && pending * 8 > this.sorted.length) this.settle();
  }

  private settle(): void {
    const pending = this.added.size + this.removed.size;
    if (pending === 0) return;
    if (pending <= SPLICE_MAX) {
      for (const t of this.removed) {
        const i = lowerBound(this.sorted, t.k);
        if (this.sorted[i] === t) this.sorted.splice(i, 1);
      }
      for (const t of this.added) this.sorted.splice(lowerBound(this.sorted, t.k), 0, t);
    } else {
      const added = [...this.added].sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
      const removed = this.removed;
      const kept = removed.size > 0 ? this.sorted.filter((t) => !removed.has(t)) : this.sorted;
      const merged: T[] = new Array<T>(kept.length + added.length);
      let i = 0;
      let j = 0;
      let o = 0;
      while (i < kept.length && j < added.length) merged[o++] = kept[i]!.k < added[j]!.k ? kept[i++]! : added[j++]!;
      while (i < kept.length) merged[o++] = kept[i++]!;
      while (j < added.length) merged[o++] = added[j++]!;
      this.sorted = merged;
    }
    this.added.clear();
    this.removed.clear();
  }
}

function lowerBound(a: readonly Keyed[], k: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]!.k < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
