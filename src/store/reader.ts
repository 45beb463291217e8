import type postgres from 'postgres';
import type { Sql } from '../db/sql.ts';
import { StoreError } from './errors.ts';
import { kindOfRange } from './kind.ts';
import { isFromKey, isSingleKey, limitsBeforeSort } from './rangeview.ts';
import type { KeyValue, PackedRangeResponse, RangeRequest, RangeResponse } from './types.ts';

type Fragment = postgres.PendingQuery<postgres.Row[]>;

/** Anything that runs tagged-template SQL: the pool, a reserved connection or a transaction. */
export type SqlLike = Sql | postgres.TransactionSql<Record<string, never>> | postgres.ReservedSql<Record<string, never>>;

interface RangeRow {
  r: number;
  c: number;
  /** Only from unchangedHistoryQuery: a key in range was written after the requested revision. */
  changed?: boolean;
  n: number;
  key: Buffer | null;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease: string;
  value: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** The key range condition; on kv_log (partitioned) it also names the kind when it can. */
function keyCond(sql: SqlLike, req: RangeRequest, partitioned: boolean): Fragment {
  const kind = partitioned ? kindOfRange(req.key, req.range_end) : undefined;
  // Naming the kind lets Postgres prune to the one partition that can hold the range.
  const k = kind !== undefined ? sql`AND kind = ${kind}` : sql``;
  if (isSingleKey(req.range_end)) return sql`key = ${req.key} ${k}`;
  if (isFromKey(req.range_end)) return sql`key >= ${req.key} ${k}`;
  return sql`key >= ${req.key} AND key < ${req.range_end} ${k}`;
}

function filters(sql: SqlLike, req: RangeRequest): Fragment {
  return sql`
    ${req.min_mod_revision ? sql`AND mod_revision >= ${req.min_mod_revision}` : sql``}
    ${req.max_mod_revision ? sql`AND mod_revision <= ${req.max_mod_revision}` : sql``}
    ${req.min_create_revision ? sql`AND create_revision >= ${req.min_create_revision}` : sql``}
    ${req.max_create_revision ? sql`AND create_revision <= ${req.max_create_revision}` : sql``}`;
}

const SORT_COLUMNS = ['key', 'version', 'create_revision', 'mod_revision', 'value'] as const;

/**
 * etcd's sort rules: a non-key target with no order sorts ascending; ties keep key order.
 * Columns are qualified with the source's alias `t` so that ORDER BY value sorts by the stored
 * value even when keys_only blanks the output column of the same name.
 */
function orderBy(sql: SqlLike, req: RangeRequest): Fragment {
  let order = req.sort_order;
  if (req.sort_target !== 0 && order === 0) order = 1;
  if (order === 0 || (req.sort_target === 0 && order === 1)) return sql`ORDER BY t.key`;
  const col = sql(SORT_COLUMNS[req.sort_target]!);
  if (req.sort_target === 0) return sql`ORDER BY t.key DESC`;
  return order === 2 ? sql`ORDER BY t.${col} DESC, t.key` : sql`ORDER BY t.${col}, t.key`;
}

function limit(sql: SqlLike, req: RangeRequest): Fragment {
  // One extra row tells whether there is more.
  return req.limit > 0 ? sql`LIMIT ${req.limit + 1}` : sql``;
}

/**
 * The rows of a range (every column of `source`, as `t`), filtered, sorted and limited as etcd
 * does. `source` is a table or CTE holding the live versions and `cond` selects the range in it.
 */
function pageRows(sql: SqlLike, req: RangeRequest, source: Fragment, cond: Fragment): Fragment {
  if (limitsBeforeSort(req)) {
    // etcd takes the first limit+1 keys in key order, then sorts only those.
    return sql`SELECT * FROM (SELECT * FROM ${source} WHERE ${cond} ORDER BY key ${limit(sql, req)}) t ${orderBy(sql, req)}`;
  }
  return sql`SELECT * FROM ${source} t WHERE ${cond} ${filters(sql, req)} ${orderBy(sql, req)} ${limit(sql, req)}`;
}

/** The page as rows, one per key. */
function pageQuery(sql: SqlLike, req: RangeRequest, source: Fragment, cond: Fragment): Fragment {
  const cols = sql`t.key, t.create_revision, t.mod_revision, t.version, t.lease::text AS lease, ${value(sql, req)} AS value`;
  return sql`SELECT ${cols} FROM (${pageRows(sql, req, source, cond)}) t ${orderBy(sql, req)}`;
}

/**
 * The same page packed by PostgreSQL into one value (see PackedRangeResponse), base64 encoded:
 * bytea's text form (hex) costs both sides more than building and decoding base64. int8send
 * and int4send are big-endian.
 */
function packedPageQuery(sql: SqlLike, req: RangeRequest, source: Fragment, cond: Fragment): Fragment {
  const val = req.keys_only ? sql`int4send(0)` : sql`int4send(length(t.value)) || t.value`;
  return sql`
    SELECT encode(string_agg(int8send(t.create_revision) || int8send(t.mod_revision) || int8send(t.version)
             || int8send(t.lease) || int4send(length(t.key)) || t.key || ${val}, ''::bytea ${orderBy(sql, req)}), 'base64') AS packed,
           count(*) AS rows
    FROM (${pageRows(sql, req, source, cond)}) t`;
}

type PageFn = (sql: SqlLike, req: RangeRequest, source: Fragment, cond: Fragment) => Fragment;

function pageFn(packed: boolean): PageFn {
  return packed ? packedPageQuery : pageQuery;
}

function emptyPage(sql: SqlLike, packed: boolean): Fragment {
  return packed
    ? sql`SELECT NULL::text AS packed, 0::int8 AS rows`
    : sql`SELECT NULL::bytea AS key, 0::int8 AS create_revision, 0::int8 AS mod_revision, 0::int8 AS version, '0' AS lease, NULL::bytea AS value WHERE false`;
}

function value(sql: SqlLike, req: RangeRequest): Fragment {
  return req.keys_only ? sql`'\\x'::bytea` : sql`t.value`;
}

function headQuery(sql: SqlLike, req: RangeRequest, packed: boolean): Fragment {
  const cond = keyCond(sql, req, false);
  const page = req.count_only ? emptyPage(sql, packed) : pageFn(packed)(sql, req, sql`kv_current`, cond);
  return sql`
    SELECT m.revision AS r, m.compact_revision AS c,
           (SELECT count(*) FROM kv_current WHERE ${cond}) AS n, p.*
    FROM meta m LEFT JOIN LATERAL (${page}) p ON true`;
}

/**
 * The common historical read: nothing in the range was written after R (Kubernetes reads
 * every page of a list at the first page's revision, seconds earlier). Then the range at R is
 * kv_current's rows with mod_revision <= R, which reads like a head range. `changed` says
 * whether that premise held in this statement's snapshot; if not, historyQuery answers.
 */
function unchangedHistoryQuery(sql: SqlLike, req: RangeRequest, packed: boolean, knownCount: number | undefined): Fragment {
  const cond = sql`${keyCond(sql, req, false)} AND mod_revision <= ${req.revision}`;
  const page = req.count_only ? emptyPage(sql, packed) : pageFn(packed)(sql, req, sql`kv_current`, cond);
  // A count at a past revision never changes: a caller that knows it saves the scan.
  const count = knownCount !== undefined ? sql`${knownCount}::int8` : sql`(SELECT count(*) FROM kv_current WHERE ${cond})`;
  return sql`
    SELECT m.revision AS r, m.compact_revision AS c,
           EXISTS (SELECT 1 FROM kv_log WHERE ${keyCond(sql, req, true)} AND mod_revision > ${req.revision}) AS changed,
           ${count} AS n, p.*
    FROM meta m LEFT JOIN LATERAL (${page}) p ON true`;
}

/**
 * The range as it was at req.revision (R). Keys whose live row in kv_current is at or below R
 * have not changed since R: that row is their state at R. Only keys written after R (found in
 * kv_log above R) need a look back in kv_log: their latest row at or below R, if it is not a
 * tombstone. Kubernetes reads every page of a paginated list at the first page's revision, so
 * R is recent and the look-back touches few keys (a DISTINCT ON over every version of the range
 * was about 5x slower than etcd per page). Compaction keeps exactly what this needs: the latest
 * row at or below the compact revision (unless a tombstone) and every row above it.
 */
function historyQuery(sql: SqlLike, req: RangeRequest, packed: boolean): Fragment {
  const r = req.revision;
  const unchanged = sql`SELECT key, create_revision, mod_revision, version, lease, value
    FROM kv_current WHERE ${keyCond(sql, req, false)} AND mod_revision <= ${r}`;
  // Both halves come out in key order, so a limited page reads only the keys it returns.
  const live = sql`(${unchanged} UNION ALL SELECT key, create_revision, mod_revision, version, lease, value FROM back)`;
  const page = req.count_only ? emptyPage(sql, packed) : pageFn(packed)(sql, req, live, sql`true`);
  return sql`
    WITH changed AS MATERIALIZED (
      SELECT DISTINCT key, kind FROM kv_log WHERE ${keyCond(sql, req, true)} AND mod_revision > ${r}
    ), back AS MATERIALIZED (
      SELECT h.key, h.create_revision, h.mod_revision, h.version, h.lease, h.value
      FROM changed c CROSS JOIN LATERAL (
        SELECT l.key, l.create_revision, l.mod_revision, l.version, l.lease, l.value, l.deleted
        -- The range's own condition again names the kind as a constant, so the plan holds only
        -- that partition (c.kind alone prunes at run time, and EXPLAIN shows every partition).
        FROM kv_log l WHERE l.key = c.key AND l.kind = c.kind AND ${keyCond(sql, req, true)} AND l.mod_revision <= ${r}
        ORDER BY l.mod_revision DESC LIMIT 1
      ) h
      WHERE NOT h.deleted
    )
    SELECT m.revision AS r, m.compact_revision AS c,
           (SELECT count(*) FROM kv_current WHERE ${keyCond(sql, req, false)} AND mod_revision <= ${r})
             + (SELECT count(*) FROM back) AS n,
           p.*
    FROM meta m LEFT JOIN LATERAL (${page}) p ON true`;
}

/**
 * etcd's Range in one SQL statement, so the revision in the header and the rows come from the
 * same snapshot. revision <= 0 reads kv_current; a past revision reads kv_log.
 */
export async function rangeQuery(sql: SqlLike, req: RangeRequest): Promise<RangeResponse> {
  const rows = await runRange<RangeRow>(sql, req, false);
  const first = rows[0]!;
  let kvs: KeyValue[] = [];
  if (first.key !== null) {
    kvs = rows.map((row) => ({
      key: row.key!, create_revision: row.create_revision, mod_revision: row.mod_revision,
      version: row.version, value: row.value ?? EMPTY, lease: row.lease,
    }));
  }
  let more = false;
  if (req.limit > 0 && kvs.length > req.limit) {
    kvs.length = req.limit;
    more = true;
  }
  return { header: { revision: first.r }, kvs, more, count: first.n };
}

interface Checked { r: number; c: number; changed?: boolean }

/** Runs a range's statement: the head, or a past revision (with the look-back when needed). */
async function runRange<T extends Checked>(sql: SqlLike, req: RangeRequest, packed: boolean, knownCount?: number): Promise<T[]> {
  let rows: T[];
  if (req.revision > 0) {
    rows = (await unchangedHistoryQuery(sql, req, packed, knownCount)) as unknown as T[];
    if (rows[0]?.changed) rows = (await historyQuery(sql, req, packed)) as unknown as T[];
  } else {
    rows = (await headQuery(sql, req, packed)) as unknown as T[];
  }
  const first = rows[0];
  if (!first) throw new StoreError('Unavailable', 'meta row missing');
  if (req.revision > 0) {
    if (req.revision > first.r) throw new StoreError('FutureRev');
    if (req.revision < first.c) throw new StoreError('Compacted');
  }
  return rows;
}

/**
 * rangeQuery with the key-values left packed (see PackedRangeResponse): what the Range RPC
 * sends. `knownCount`: the range's count at req.revision, when the caller knows it.
 */
export async function packedRangeQuery(sql: SqlLike, req: RangeRequest, knownCount?: number): Promise<PackedRangeResponse> {
  const [first] = await runRange<Checked & { n: number; packed: string | null; rows: number }>(sql, req, true, knownCount);
  const rows = first!.rows;
  const more = req.limit > 0 && rows > req.limit;
  return {
    header: { revision: first!.r },
    packed: first!.packed === null ? EMPTY : Buffer.from(first!.packed, 'base64'),
    kvs: more ? req.limit : rows,
    more,
    count: first!.n,
  };
}
