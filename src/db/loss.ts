/**
 * A dedicated connection's loss, for statements that must not wait on a dead connection
 * (postgres.js may leave a statement pending on it): `guard(p)` settles like `p`, or rejects
 * with the loss's error as soon as `fail()` is called.
 *
 * Each guarded statement registers itself and is forgotten once it settles. Racing every
 * statement against one promise that lives as long as the connection would not do: each race
 * adds a reaction to that promise that is never removed, holding the statement's result for
 * the connection's lifetime (a write path leaked every batch's result that way).
 */
export class ConnectionLoss {
  private readonly waiting = new Set<(err: unknown) => void>();
  private err: unknown;
  private failed = false;

  get lost(): boolean {
    return this.failed;
  }

  /** Statements being guarded right now. */
  get pending(): number {
    return this.waiting.size;
  }

  /** The connection is gone: every guarded statement, and every later one, rejects with `err`. */
  fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.err = err;
    for (const reject of this.waiting) reject(err);
    this.waiting.clear();
  }

  guard<T>(p: Promise<T>): Promise<T> {
    if (this.failed) {
      p.catch(() => undefined);
      return Promise.reject(this.err);
    }
    return new Promise<T>((resolve, reject) => {
      this.waiting.add(reject);
      p.then(
        (v) => { this.waiting.delete(reject); resolve(v); },
        (e: unknown) => { this.waiting.delete(reject); reject(e); },
      );
    });
  }
}
