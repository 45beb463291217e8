import type postgres from 'postgres';
import type { Sql } from '../db/sql.ts';
import { kindOf, kindOfRange } from '../store/kind.ts';
import type { KeyValue, StoreEvent } from '../store/types.ts';
import { eventFieldSize } from './size.ts';
import { deleteKv, type FeedEvent } from './types.ts';

/**
 * The watch module's SQL: reading kv_log after a revision. Every read returns meta's revision
 * and compact revision from the same snapshot, so the caller knows exactly which revisions the
 * rows cover (revisions up to meta.revision are all committed in that snapshot: writers lock
 * meta, so commit order is revision order) and whether the start was compacted.
 *
 * prev_kv comes from the same statement: the row a change replaced is found through its
 * prev_revision on kv_log's primary key (key, mod_revision, kind); a tombstone predecessor means
 * the key did not exist, so no prev_kv (etcd: a create event has none).
 */

type Fragment = postgres.PendingQuery<postgres.Row[]>;

interface Row {
  r: number;
  c: number;
  mod_revision: number | null;
  create_revision: number;
  version: number;
  lease: string;
  deleted: boolean;
  key: Buffer;
  value: Buffer;
  p_create: number | null;
  p_mod: number | null;
  p_version: number;
  p_lease: string;
  p_value: Buffer;
}

export interface LogRead {
  storeRevision: number;
  compactRevision: number;
  /** The events read are every matching event with revision in [from, coveredTo]. */
  coveredTo: number;
  events: FeedEvent[];
}

/** `prevKind` names the kind of every row read, when the range has one: see rangeKind. */
function eventsQuery(sql: Sql, cond: Fragment, limit: number | undefined, prevKind: Fragment = sql``): Fragment {
  return sql`
    SELECT m.revision AS r, m.compact_revision AS c, e.*
    FROM meta m LEFT JOIN LATERAL (
      SELECT l.mod_revision, l.sub, l.create_revision, l.version, l.lease::text AS lease, l.deleted, l.key, l.value,
             p.create_revision AS p_create, p.mod_revision AS p_mod, p.version AS p_version,
             p.lease::text AS p_lease, p.value AS p_value
      FROM kv_log l
      -- LATERAL + LIMIT keeps this a primary-key probe per row (one partition, pruned at run
      -- time by l.kind) whatever the planner thinks of the row count: never a join over kv_log.
      LEFT JOIN LATERAL (
        SELECT p.create_revision, p.mod_revision, p.version, p.lease, p.value FROM kv_log p
        WHERE l.prev_revision > 0 AND p.key = l.key AND p.mod_revision = l.prev_revision AND p.kind = l.kind ${prevKind} AND NOT p.deleted
        LIMIT 1
      ) p ON true
      WHERE ${cond} AND l.mod_revision <= m.revision
      ORDER BY l.mod_revision, l.sub
      ${limit !== undefined ? sql`LIMIT ${limit}` : sql``}
    ) e ON true
    WHERE m.id = 1`;
}

/**
 * Every change with revision in (after, after + window], capped at the store's revision. The
 * window bounds one read; a revision is never split because the bound is a revision.
 */
export async function readLog(sql: Sql, after: number, window: number): Promise<LogRead> {
  const rows = (await eventsQuery(sql, sql`l.mod_revision > ${after} AND l.mod_revision <= ${after + window}`, undefined)) as unknown as Row[];
  const first = rows[0];
  if (!first) throw new Error('meta row missing');
  return {
    storeRevision: first.r,
    compactRevision: first.c,
    coveredTo: Math.min(first.r, after + window),
    events: toEvents(rows),
  };
}

/**
 * The changes to keys in [key, end) (end null = the key alone, '' = no end) with revision in
 * [from, to], at most about `limit` rows: a read that hits the limit stops before its last,
 * possibly partial, revision (and reads that one whole when it alone is over the limit).
 */
export async function readRange(
  sql: Sql, key: Buffer, end: Buffer | null, from: number, to: number, limit: number,
): Promise<LogRead> {
  const cond = sql`${keyCond(sql, key, end)} AND l.mod_revision >= ${from} AND l.mod_revision <= ${to}`;
  const rows = (await eventsQuery(sql, cond, limit + 1, prevKindCond(sql, key, end))) as unknown as Row[];
  const first = rows[0];
  if (!first) throw new Error('meta row missing');
  const top = Math.min(first.r, to);
  if (first.mod_revision === null || rows.length <= limit) {
    return { storeRevision: first.r, compactRevision: first.c, coveredTo: top, events: toEvents(rows) };
  }
  // Over the limit: keep whole revisions only.
  const last = rows[rows.length - 1]!.mod_revision!;
  const whole = rows.filter((r) => r.mod_revision! < last);
  if (whole.length > 0) {
    return { storeRevision: first.r, compactRevision: first.c, coveredTo: last - 1, events: toEvents(whole) };
  }
  // One revision alone exceeds the limit: read all of it.
  const all = (await eventsQuery(sql, sql`${keyCond(sql, key, end)} AND l.mod_revision = ${last}`, undefined, prevKindCond(sql, key, end))) as unknown as Row[];
  const f = all[0]!;
  return { storeRevision: f.r, compactRevision: f.c, coveredTo: last, events: toEvents(all) };
}

/**
 * The previous-version lookup names the range's kind as a constant when it has one, so the plan
 * holds that one partition (p.kind = l.kind alone prunes only at run time).
 */
function prevKindCond(sql: Sql, key: Buffer, end: Buffer | null): Fragment {
  const kind = end === null ? kindOf(key) : kindOfRange(key, end.length === 0 ? Buffer.from([0]) : end);
  return kind !== undefined ? sql`AND p.kind = ${kind}` : sql``;
}

function keyCond(sql: Sql, key: Buffer, end: Buffer | null): Fragment {
  if (end === null) return sql`l.key = ${key} AND l.kind = ${kindOf(key)}`;
  const kind = kindOfRange(key, end.length === 0 ? Buffer.from([0]) : end);
  // Naming the kind lets Postgres prune to the one partition that can hold the range.
  const k = kind !== undefined ? sql`AND l.kind = ${kind}` : sql``;
  if (end.length === 0) return sql`l.key >= ${key} ${k}`;
  return sql`l.key >= ${key} AND l.key < ${end} ${k}`;
}

function toEvents(rows: Row[]): FeedEvent[] {
  const out: FeedEvent[] = [];
  for (const r of rows) {
    if (r.mod_revision === null) continue;
    const kv: KeyValue = r.deleted
      ? deleteKv(r.key, r.mod_revision)
      : { key: r.key, create_revision: r.create_revision, mod_revision: r.mod_revision, version: r.version, value: r.value, lease: r.lease };
    const prev: KeyValue | null = r.p_mod === null ? null : {
      key: r.key, create_revision: r.p_create!, mod_revision: r.p_mod, version: r.p_version, value: r.p_value, lease: r.p_lease,
    };
    out.push(feedEvent(r.deleted, kv, prev));
  }
  return out;
}

/** An event as the hub keeps it, from the changed kv and the version it replaced. */
export function feedEvent(deleted: boolean, kv: KeyValue, prev: KeyValue | null, keyStr = kv.key.toString('latin1')): FeedEvent {
  const type = deleted ? 1 : 0;
  const bare: StoreEvent = { type, kv, prev_kv: null };
  const event: StoreEvent = prev ? { type, kv, prev_kv: prev } : bare;
  const bareSize = eventFieldSize(bare);
  return {
    revision: kv.mod_revision,
    keyStr,
    event,
    bare,
    size: prev ? eventFieldSize(event) : bareSize,
    bareSize,
  };
}
