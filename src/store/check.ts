import type { Sql } from '../db/sql.ts';

/**
 * The invariants that tie kv_log, kv_current, leases and meta together, checked in SQL: what
 * must hold after any sequence of acknowledged writes, crashes and compactions. Tests run it
 * after every multi-instance and fault test; `pgetcd check` runs it for a DBA after a restore.
 * Each check is one statement that returns up to `sample` offending rows (as text), so a
 * violation names the rows to look at. Read-only; run it inside one REPEATABLE READ snapshot so
 * writers running meanwhile cannot make it report a half-applied batch.
 */

export interface Violation {
  check: string;
  /** What the invariant says, in one line. */
  rule: string;
  /** Up to `sample` offending rows, each rendered as text. */
  rows: string[];
}

interface Check {
  name: string;
  rule: string;
  /** Returns one text column `row` per offending row; `$1` is the sample size. */
  query: string;
}

/**
 * `chain` is every kv_log row with the key's previous row (by revision) beside it. Rows of one
 * key never share a revision (the primary key is (key, mod_revision, kind)).
 */
const CHAIN = `WITH m AS (SELECT revision, compact_revision FROM meta WHERE id = 1),
chain AS (
  SELECT l.*, lag(l.mod_revision) OVER w AS p_mod, lag(l.version) OVER w AS p_version,
         lag(l.create_revision) OVER w AS p_create, lag(l.deleted) OVER w AS p_deleted
  FROM kv_log l WINDOW w AS (PARTITION BY l.key ORDER BY l.mod_revision))`;

const ROW = `format('key=%s rev=%s sub=%s prev=%s version=%s create=%s deleted=%s',
  encode(c.key, 'escape'), c.mod_revision, c.sub, c.prev_revision, c.version, c.create_revision, c.deleted)`;

const CHECKS: Check[] = [
  {
    name: 'meta',
    rule: 'meta has its one row, with 0 <= compact_revision <= revision and revision >= 1',
    query: `SELECT format('rows=%s revision=%s compact=%s', count(*), max(revision), max(compact_revision)) AS row
      FROM meta HAVING count(*) <> 1 OR max(revision) < 1 OR max(compact_revision) < 0 OR max(compact_revision) > max(revision) LIMIT $1::int`,
  },
  {
    name: 'no-future-rows',
    rule: 'no kv_log row is above meta.revision',
    query: `${CHAIN} SELECT ${ROW} AS row FROM chain c, m WHERE c.mod_revision > m.revision ORDER BY c.mod_revision LIMIT $1::int`,
  },
  {
    name: 'gapless',
    rule: 'every revision in (compact_revision, revision] has kv_log rows, numbered sub = 0, 1, 2, ... within it',
    query: `WITH m AS (SELECT revision, compact_revision FROM meta WHERE id = 1),
      revs AS (SELECT l.mod_revision AS rev, count(*) AS n, min(l.sub) AS lo, max(l.sub) AS hi
               FROM kv_log l, m WHERE l.mod_revision > m.compact_revision GROUP BY l.mod_revision)
      SELECT format('revision %s: %s', g.rev, CASE WHEN r.rev IS NULL THEN 'no rows' ELSE format('subs %s..%s for %s rows', r.lo, r.hi, r.n) END) AS row
      FROM m, generate_series(m.compact_revision + 1, m.revision) AS g(rev) LEFT JOIN revs r ON r.rev = g.rev
      WHERE (r.rev IS NULL AND g.rev > 1) OR r.lo <> 0 OR r.hi <> r.n - 1 ORDER BY g.rev LIMIT $1::int`,
  },
  {
    name: 'prev-revision',
    rule: "a row's prev_revision is its key's previous row (0 when the key was created); only rows at or below the compact revision may have lost their predecessor",
    query: `${CHAIN} SELECT ${ROW} || format(' previous-row=%s', c.p_mod) AS row FROM chain c, m
      WHERE (c.deleted AND c.p_mod IS NULL AND c.mod_revision > m.compact_revision)
         OR (c.p_mod IS NOT NULL AND c.prev_revision <> CASE WHEN c.p_deleted AND NOT c.deleted THEN 0 ELSE c.p_mod END)
         OR (c.p_mod IS NULL AND NOT c.deleted AND c.prev_revision <> 0 AND c.mod_revision > m.compact_revision)
      ORDER BY c.mod_revision LIMIT $1::int`,
  },
  {
    name: 'versions',
    rule: 'a created key starts at version 1 with create_revision = its revision; each later put adds 1 and keeps create_revision; a tombstone has version 0',
    query: `${CHAIN} SELECT ${ROW} || format(' previous-version=%s previous-create=%s', c.p_version, c.p_create) AS row FROM chain c, m
      WHERE (c.deleted AND (c.version <> 0 OR c.create_revision <> 0))
         OR (NOT c.deleted AND c.prev_revision = 0 AND (c.version <> 1 OR c.create_revision <> c.mod_revision))
         OR (NOT c.deleted AND c.prev_revision <> 0 AND c.p_mod IS NOT NULL
             AND (c.version <> c.p_version + 1 OR c.create_revision <> c.p_create))
         OR (NOT c.deleted AND c.prev_revision <> 0 AND c.p_mod IS NULL AND c.mod_revision > m.compact_revision)
      ORDER BY c.mod_revision LIMIT $1::int`,
  },
  {
    name: 'current-matches-log',
    rule: "kv_current holds exactly each key's newest kv_log row unless that row is a tombstone, with the same metadata and value",
    query: `WITH last AS (SELECT DISTINCT ON (key) * FROM kv_log ORDER BY key, mod_revision DESC)
      SELECT format('key=%s log=%s current=%s', encode(coalesce(l.key, c.key), 'escape'),
        CASE WHEN l.key IS NULL THEN 'none' ELSE format('rev %s version %s create %s lease %s deleted %s', l.mod_revision, l.version, l.create_revision, l.lease, l.deleted) END,
        CASE WHEN c.key IS NULL THEN 'none' ELSE format('rev %s version %s create %s lease %s', c.mod_revision, c.version, c.create_revision, c.lease) END) AS row
      FROM last l FULL JOIN kv_current c ON c.key = l.key
      WHERE (l.key IS NULL) OR (c.key IS NULL AND NOT l.deleted) OR (c.key IS NOT NULL AND l.deleted)
         OR (c.key IS NOT NULL AND (c.mod_revision, c.version, c.create_revision, c.lease) IS DISTINCT FROM (l.mod_revision, l.version, l.create_revision, l.lease))
         OR (c.key IS NOT NULL AND c.value <> l.value)
      LIMIT $1::int`,
  },
  {
    name: 'leases-exist',
    rule: 'every live key attached to a lease names a lease that exists',
    query: `SELECT format('key=%s rev=%s lease=%s', encode(c.key, 'escape'), c.mod_revision, c.lease) AS row
      FROM kv_current c WHERE c.lease <> 0 AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.id = c.lease) LIMIT $1::int`,
  },
];

/** The names of the checks, in the order they run. */
export const CHECK_NAMES: readonly string[] = CHECKS.map((c) => c.name);

/**
 * Runs every check in one REPEATABLE READ, READ ONLY transaction and returns the violations
 * (empty when the store is consistent).
 */
export async function checkConsistency(sql: Sql, opts: { sample?: number } = {}): Promise<Violation[]> {
  const sample = opts.sample ?? 10;
  const out: Violation[] = [];
  await sql.begin('ISOLATION LEVEL REPEATABLE READ READ ONLY', async (tx) => {
    for (const c of CHECKS) {
      const rows = (await tx.unsafe(c.query, [sample])) as unknown as Array<{ row: string }>;
      if (rows.length > 0) out.push({ check: c.name, rule: c.rule, rows: rows.map((r) => r.row) });
    }
  });
  return out;
}

/** The violations as text, one block per check, for an assertion message or a terminal. */
export function formatViolations(vs: readonly Violation[]): string {
  return vs.map((v) => `${v.check}: ${v.rule}\n${v.rows.map((r) => `  ${r}`).join('\n')}`).join('\n');
}
