import type { Sql } from '../db/sql.ts';
import { toUnavailable } from '../store/pgerrors.ts';
import { PROMOTED_LOCK } from './locks.ts';

/** A keep-alive's answer: the granted TTL, or 0 when the lease is unknown or has expired. */
export interface Renewal {
  ttl: number;
  /** The store's revision when the renewal ran (etcd fills the header before renewing). */
  revision: number;
}

interface Waiter {
  resolve(r: Renewal): void;
  reject(e: unknown): void;
}

/**
 * Batches keep-alives. Renewals need no revision, so they do not go through the writer: every
 * keep-alive that arrives while one statement runs joins the next one, and one UPDATE renews
 * them all (a lease asked for several times in one batch is renewed once). One statement is in
 * flight at a time per instance; with thousands of leases a batch holds thousands of IDs.
 *
 * A lease past its expiry is not renewed while an instance holds the PROMOTED lock (it is being
 * revoked: TTL 0, as etcd answers); with nobody expiring leases it is renewed, since the next
 * expiry holder would extend it anyway.
 */
export class Renewer {
  readonly stats = { statements: 0, renewals: 0 };
  private pending = new Map<string, Waiter[]>();
  private running = false;
  private scheduled = false;

  constructor(private readonly sql: Sql, private readonly maxBatch = 5000) {}

  renew(id: string): Promise<Renewal> {
    return new Promise<Renewal>((resolve, reject) => {
      const waiters = this.pending.get(id);
      if (waiters) waiters.push({ resolve, reject });
      else this.pending.set(id, [{ resolve, reject }]);
      this.kick();
    });
  }

  private kick(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    // Let the keep-alives that arrived in the same turn of the event loop join the first batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.pending.size > 0) {
        const batch = new Map<string, Waiter[]>();
        for (const [id, ws] of this.pending) {
          if (batch.size >= this.maxBatch) break;
          batch.set(id, ws);
        }
        for (const id of batch.keys()) this.pending.delete(id);
        await this.run(batch);
      }
    } finally {
      this.running = false;
    }
  }

  private async run(batch: Map<string, Waiter[]>): Promise<void> {
    const ids = [...batch.keys()];
    let rows: Array<{ revision: number; id: string | null; ttl: number | null }>;
    try {
      rows = (await this.sql`
        WITH u AS (
          UPDATE leases SET expires_at = now() + ttl * interval '1 second'
          WHERE id = ANY(${this.sql.array(ids, 25)}::int8[])
            AND (expires_at > now() OR NOT EXISTS (
              SELECT 1 FROM pg_locks
              WHERE locktype = 'advisory' AND granted AND objsubid = 1
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND classid = ${PROMOTED_LOCK.classid}::oid AND objid = ${PROMOTED_LOCK.objid}::oid))
          RETURNING id::text AS id, ttl)
        SELECT m.revision, u.id, u.ttl FROM meta m LEFT JOIN u ON true WHERE m.id = 1`) as unknown as typeof rows;
    } catch (err) {
      const e = toUnavailable(err) ?? err;
      for (const ws of batch.values()) for (const w of ws) w.reject(e);
      return;
    }
    this.stats.statements++;
    const revision = rows[0]?.revision ?? 0;
    const ttls = new Map<string, number>();
    for (const r of rows) if (r.id !== null) ttls.set(r.id, r.ttl ?? 0);
    this.stats.renewals += ttls.size;
    for (const [id, ws] of batch) {
      const res: Renewal = { ttl: ttls.get(id) ?? 0, revision };
      for (const w of ws) w.resolve(res);
    }
  }
}
