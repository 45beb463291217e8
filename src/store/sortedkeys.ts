/**
 * A set of latin1 key strings kept in byte order for range lookups, updated lazily: keys that
 * come and go are collected, and merged into the ordered array only when an ordered view is
 * asked for (a range), or when enough have piled up. A write-heavy load that never lists (new
 * keys arriving in every batch) then costs a Set insertion per key instead of an array splice
 * over every key; a list after writes pays one merge, O(n + m log m) for m changes over n keys.
 */

/** Up to this many pending changes are spliced in one by one; more are merged in one pass. */
const SPLICE_MAX = 64;
/** Pending changes are merged once they exceed both this and an eighth of the keys (amortized O(log m) each). */
const PENDING_MIN = 1024;

export class SortedKeys {
  private sorted: string[] = [];
  /** Keys present but not yet in `sorted`. */
  private readonly added = new Set<string>();
  /** Keys still in `sorted` that are gone. */
  private readonly removed = new Set<string>();

  /** Starts over with `keys`, which must already be in byte order. */
  reset(keys: string[]): void {
    this.sorted = keys;
    this.added.clear();
    this.removed.clear();
  }

  /** Number of keys present. */
  get size(): number {
    return this.sorted.length + this.added.size - this.removed.size;
  }

  /** A key that was not present now is. */
  add(k: string): void {
    if (!this.removed.delete(k)) this.added.add(k);
    this.maybeSettle();
  }

  /** A key that was present is gone. */
  remove(k: string): void {
    if (!this.added.delete(k)) this.removed.add(k);
    this.maybeSettle();
  }

  /** Every present key in byte order. The array is the caller's to read until the next change. */
  ordered(): readonly string[] {
    this.settle();
    return this.sorted;
  }

  /** Index in ordered() of the first key >= k. */
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
      for (const k of this.removed) {
        const i = lowerBound(this.sorted, k);
        if (this.sorted[i] === k) this.sorted.splice(i, 1);
      }
      for (const k of this.added) this.sorted.splice(lowerBound(this.sorted, k), 0, k);
    } else {
      const added = [...this.added].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const removed = this.removed;
      const kept = removed.size > 0 ? this.sorted.filter((k) => !removed.has(k)) : this.sorted;
      const merged: string[] = new Array<string>(kept.length + added.length);
      let i = 0;
      let j = 0;
      let o = 0;
      while (i < kept.length && j < added.length) merged[o++] = kept[i]! < added[j]! ? kept[i++]! : added[j++]!;
      while (i < kept.length) merged[o++] = kept[i++]!;
      while (j < added.length) merged[o++] = added[j++]!;
      this.sorted = merged;
    }
    this.added.clear();
    this.removed.clear();
  }
}

function lowerBound(a: readonly string[], k: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
