import type { Sql } from '../db/sql.ts';
import { dbCall } from '../store/pgerrors.ts';

export interface LeaseTimeToLive {
  revision: number;
  /** False when no such lease exists (etcd 3.5 then answers TTL -1, not an error). */
  found: boolean;
  /** Whole seconds left, truncated like etcd's int64(Remaining().Seconds()); never below 0. */
  ttl: number;
  grantedTtl: number;
  /** The lease's keys in key order (only when asked for). */
  keys: Buffer[];
}

/** Remaining and granted TTL from the database clock, and optionally the attached keys, in one statement. */
export async function timeToLive(sql: Sql, id: string, withKeys: boolean): Promise<LeaseTimeToLive> {
  const keys = withKeys
    ? sql`ARRAY(SELECT k.key FROM kv_current k WHERE k.lease = l.id AND k.lease <> 0 ORDER BY k.key)`
    : sql`'{}'::bytea[]`;
  const rows = (await dbCall(() => sql`
    SELECT m.revision, l.ttl AS granted,
           CASE WHEN l.expires_at <= now() THEN 0
                ELSE trunc(EXTRACT(EPOCH FROM l.expires_at - now()))::int8 END AS ttl,
           ${keys} AS keys
    FROM meta m LEFT JOIN leases l ON l.id = ${id}::int8
    WHERE m.id = 1`)) as unknown as Array<{ revision: number; granted: number | null; ttl: number | null; keys: Buffer[] | null }>;
  const r = rows[0];
  if (!r) throw new Error('meta row missing');
  if (r.granted === null) return { revision: r.revision, found: false, ttl: -1, grantedTtl: 0, keys: [] };
  return { revision: r.revision, found: true, ttl: r.ttl ?? 0, grantedTtl: r.granted, keys: r.keys ?? [] };
}

/** Every lease ID, soonest expiry first (etcd's Leases() sorts by remaining time). */
export async function listLeases(sql: Sql): Promise<{ revision: number; ids: string[] }> {
  const rows = (await dbCall(() => sql`
    SELECT m.revision, ARRAY(SELECT id::text FROM leases ORDER BY expires_at, id) AS ids
    FROM meta m WHERE m.id = 1`)) as unknown as Array<{ revision: number; ids: string[] }>;
  const r = rows[0];
  if (!r) throw new Error('meta row missing');
  return { revision: r.revision, ids: r.ids };
}
