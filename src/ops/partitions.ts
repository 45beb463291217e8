import type { Sql } from '../db/sql.ts';
import { COMPACT_LOCK } from '../store/compactor.ts';
import { kindInfo } from '../store/kind.ts';

/**
 * Operator actions on kv_log's partitions: list them, give a kind a partition of its own, fold
 * one back into the default partition, tune one's storage settings.
 *
 * Moving rows online. PostgreSQL refuses to attach a partition for kind K while rows of K sit
 * in the DEFAULT partition, and deleting them from DEFAULT first would hide them from readers.
 * So a change builds the new tables beside the live ones, while writers keep writing:
 *   1. create the new tables detached (for an add: the kind's table and a new default; for a
 *      remove: a new default), each with a CHECK constraint equal to its future partition
 *      constraint, so ATTACH needs no scan;
 *   2. copy the source partitions' rows in bounded batches in (mod_revision, sub) order, up to
 *      the store's revision at the start of the pass; build the indexes; pass again over the
 *      rows written meanwhile until what is left is small;
 *   3. in one short transaction (lock_timeout bounded, retried): take kv_log's ACCESS EXCLUSIVE
 *      lock, copy the last rows, detach the old tables, attach the new ones, drop the old ones,
 *      update the map. Writers and readers of kv_log wait only for this transaction.
 * kv_log rows are only ever inserted (writers) or deleted (compaction): holding the compaction
 * lock for the whole change makes "rows above the cursor" the only difference to copy.
 * Costs: the default partition is rewritten too (its size in extra writes and WAL).
 */

/** One partition change at a time, across every instance and command. */
export const PARTITION_LOCK = 0x70676574_6302;

const DEFAULT_TABLE = 'kv_log_default';
const NEXT_DEFAULT = 'kv_log_default_next';

export interface KindRule {
  kind: string;
  /** The key prefix every key of the kind starts with. */
  prefix: Buffer;
}

/**
 * The kind a `partitions add` argument names: a kind as src/store/kind.ts derives it ('pods',
 * 'example.com/widgets') or the key prefix of exactly one kind ('/registry/pods/'). Any other
 * prefix cannot be a partition: a row's kind, not the map, decides where it is stored.
 */
export function resolveKind(arg: string): KindRule {
  if (arg.startsWith('/')) {
    const p = arg.endsWith('/') ? arg : `${arg}/`;
    const info = kindInfo(Buffer.from(`${p}x`));
    if (info.kind === '' || info.prefix.toString('latin1') !== p) {
      throw new Error(`${arg} is not the key prefix of one resource type (such as /registry/pods/ or /registry/example.com/widgets/); only resource types can have a partition`);
    }
    return { kind: info.kind, prefix: info.prefix };
  }
  if (!/^[\x21-\x7e]{1,201}$/.test(arg) || arg.startsWith('/') || arg.endsWith('/')) throw new Error(`"${arg}" is not a resource type`);
  const prefix = arg === 'endpoints' ? '/registry/services/endpoints/'
    : arg === 'services' ? '/registry/services/specs/'
    : `/registry/${arg}/`;
  const info = kindInfo(Buffer.from(`${prefix}x`));
  if (info.kind !== arg) throw new Error(`"${arg}" is not a resource type as pgetcd derives them from keys (e.g. pods, example.com/widgets)`);
  return { kind: arg, prefix: info.prefix };
}

/** A table name for a kind's partition: kv_log_<kind> with anything but [a-z0-9_] as '_'. */
export function tableNameFor(kind: string): string {
  return `kv_log_${kind.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

function ident(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`"${name}" is not a valid table name (lower case letters, digits and _)`);
  return `"${name}"`;
}

function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

export interface PartitionInfo {
  table: string;
  /** The kind it holds; null for the default partition. */
  kind: string | null;
  prefix: string | null;
  origin: string | null;
  liveKeys: number;
  historyRows: number;
  tombstones: number;
  tableBytes: number;
  indexBytes: number;
  lastVacuum: string | null;
  lastAnalyze: string | null;
  settings: string[];
}

/** Every partition of kv_log with its rule, row counts, sizes and maintenance times. */
export async function listPartitions(sql: Sql): Promise<PartitionInfo[]> {
  const parts = (await sql`
    SELECT c.relname AS table, p.kind, p.prefix, p.origin,
           pg_table_size(c.oid)::int8 AS table_bytes, pg_indexes_size(c.oid)::int8 AS index_bytes,
           greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum, greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
           coalesce(c.reloptions, '{}') AS settings,
           pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    LEFT JOIN kv_partitions p ON p.table_name = c.relname
    WHERE i.inhparent = 'kv_log'::regclass
    ORDER BY (pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'), c.relname`) as unknown as Array<{
      table: string; kind: string | null; prefix: Buffer | null; origin: string | null; table_bytes: number; index_bytes: number;
      last_vacuum: Date | null; last_analyze: Date | null; settings: string[]; is_default: boolean;
    }>;
  const out: PartitionInfo[] = [];
  let livePartitioned = 0;
  for (const p of parts) {
    const [c] = (await sql.unsafe(`SELECT count(*)::int8 AS rows, count(*) FILTER (WHERE deleted)::int8 AS tombstones FROM ${ident(p.table)}`)) as unknown as Array<{ rows: number; tombstones: number }>;
    let live = 0;
    if (!p.is_default && p.kind !== null) {
      live = await liveKeysOfKind(sql, p.kind);
      livePartitioned += live;
    }
    out.push({
      table: p.table, kind: p.is_default ? null : p.kind, prefix: p.prefix ? p.prefix.toString('latin1') : null, origin: p.origin,
      liveKeys: live, historyRows: c!.rows, tombstones: c!.tombstones, tableBytes: p.table_bytes, indexBytes: p.index_bytes,
      lastVacuum: p.last_vacuum?.toISOString() ?? null, lastAnalyze: p.last_analyze?.toISOString() ?? null, settings: p.settings,
    });
  }
  const def = out.find((p) => p.table === DEFAULT_TABLE);
  if (def) {
    const [t] = (await sql`SELECT count(*)::int8 AS n FROM kv_current`) as unknown as Array<{ n: number }>;
    def.liveKeys = t!.n - livePartitioned;
  }
  return out;
}

/** Live keys of a kind: kv_current has no kind column, so count its keys under the kind's prefix. */
async function liveKeysOfKind(sql: Sql, kind: string): Promise<number> {
  const { prefix } = resolveKind(kind);
  if (kind === 'services') {
    // 'services' is every /registry/services/<x>/ except endpoints.
    const [r] = (await sql`SELECT count(*)::int8 AS n FROM kv_current WHERE key >= ${Buffer.from('/registry/services/')} AND key < ${Buffer.from('/registry/services0')}
      AND NOT (key >= ${Buffer.from('/registry/services/endpoints/')} AND key < ${Buffer.from('/registry/services/endpoints0')})`) as unknown as Array<{ n: number }>;
    return r!.n;
  }
  const end = Buffer.from(prefix);
  end[end.length - 1]! += 1;
  const [r] = (await sql`SELECT count(*)::int8 AS n FROM kv_current WHERE key >= ${prefix} AND key < ${end}`) as unknown as Array<{ n: number }>;
  return r!.n;
}

export interface MoveOptions {
  /** Rows per copy statement (bounded transactions and WAL bursts). */
  batchRows?: number;
  /** Sleep between batches, to cap the copy's share of I/O. */
  pauseMs?: number;
  /** The swap waits at most this long for kv_log's lock before backing off and retrying. */
  lockTimeoutMs?: number;
  /** Table name for the new partition (add only). */
  name?: string;
  /** Recorded in the map ('add' from the command, 'auto' from --auto-partition). */
  origin?: 'add' | 'auto';
  onProgress?: (done: number, total: number) => void;
}

export interface MoveReport {
  kind: string;
  table: string;
  /** Rows copied into the new tables in total (all of the rewritten partitions). */
  rowsCopied: number;
  /** Rows of the kind that changed partition. */
  rowsMoved: number;
  passes: number;
  /** Swap attempts that timed out waiting for the lock. */
  lockRetries: number;
  /** Duration of the swap transaction: the longest any writer or reader of kv_log waited on it. */
  swapMs: number;
  seconds: number;
}

interface Source { table: string; rev: number; sub: number }

/**
 * Gives `kindOrPrefix` a kv_log partition of its own, moving its rows out of the default
 * partition online. `sql` must be a pool of one connection: the change holds session locks.
 */
export async function addPartition(sql: Sql, kindOrPrefix: string, opts: MoveOptions = {}): Promise<MoveReport> {
  const rule = resolveKind(kindOrPrefix);
  const table = opts.name ?? tableNameFor(rule.kind);
  ident(table);
  return withChangeLocks(sql, async (pending) => {
    const mapped = (await sql`SELECT table_name FROM kv_partitions WHERE kind = ${rule.kind}`) as unknown as Array<{ table_name: string }>;
    if (mapped.length) throw new Error(`${rule.kind} already has partition ${mapped[0]!.table_name}`);
    const [clash] = (await sql`SELECT 1 FROM pg_inherits WHERE inhparent = 'kv_log'::regclass AND inhrelid = to_regclass(${table})`) as unknown as unknown[];
    if (clash) throw new Error(`${table} is already a partition of kv_log`);
    const kinds = await partitionedKinds(sql);
    const settings = await reloptions(sql, DEFAULT_TABLE);
    await prepareTable(sql, table, `CHECK (kind = ${literal(rule.kind)})`);
    await prepareTable(sql, NEXT_DEFAULT, defaultCheck([...kinds, rule.kind]));
    await pauseAutovacuum(sql, pending, [DEFAULT_TABLE], [settings]);
    const route = (src: string): string => `a AS (INSERT INTO ${ident(table)} SELECT * FROM ${src} WHERE kind = ${literal(rule.kind)} RETURNING 1),
      b AS (INSERT INTO ${ident(NEXT_DEFAULT)} SELECT * FROM ${src} WHERE kind <> ${literal(rule.kind)} RETURNING 1)`;
    const report = await rebuild(sql, [{ table: DEFAULT_TABLE, rev: 0, sub: 0 }], [table, NEXT_DEFAULT], route, opts, async () => {
      await sql.unsafe(`ALTER TABLE kv_log DETACH PARTITION ${ident(DEFAULT_TABLE)}`);
      await sql.unsafe(`ALTER TABLE kv_log ATTACH PARTITION ${ident(table)} FOR VALUES IN (${literal(rule.kind)})`);
      await sql.unsafe(`ALTER TABLE kv_log ATTACH PARTITION ${ident(NEXT_DEFAULT)} DEFAULT`);
      await sql.unsafe(`DROP TABLE ${ident(DEFAULT_TABLE)}`);
      await renameTable(sql, NEXT_DEFAULT, DEFAULT_TABLE);
      await sql`INSERT INTO kv_partitions (kind, table_name, prefix, origin) VALUES (${rule.kind}, ${table}, ${rule.prefix}, ${opts.origin ?? 'add'})`;
    });
    await restoreOptions(sql, table, []);
    await restoreOptions(sql, DEFAULT_TABLE, settings);
    const [m] = (await sql.unsafe(`SELECT count(*)::int8 AS n FROM ${ident(table)}`)) as unknown as Array<{ n: number }>;
    return { ...report, kind: rule.kind, table, rowsMoved: m!.n };
  });
}

/** Folds a kind's partition back into the default partition, online (same procedure). */
export async function removePartition(sql: Sql, kindOrTable: string, opts: MoveOptions = {}): Promise<MoveReport> {
  return withChangeLocks(sql, async (pending) => {
    const [p] = (await sql`SELECT kind, table_name FROM kv_partitions WHERE kind = ${kindOrTable} OR table_name = ${kindOrTable}`) as unknown as Array<{ kind: string; table_name: string }>;
    if (!p) throw new Error(`no partition for ${kindOrTable} (see pgetcd partitions list)`);
    const kinds = (await partitionedKinds(sql)).filter((k) => k !== p.kind);
    const settings = await reloptions(sql, DEFAULT_TABLE);
    await prepareTable(sql, NEXT_DEFAULT, defaultCheck(kinds));
    const kindSettings = await reloptions(sql, p.table_name);
    await pauseAutovacuum(sql, pending, [DEFAULT_TABLE, p.table_name], [settings, kindSettings]);
    const route = (src: string): string => `a AS (INSERT INTO ${ident(NEXT_DEFAULT)} SELECT * FROM ${src} RETURNING 1), b AS (SELECT 1)`;
    const [m] = (await sql.unsafe(`SELECT count(*)::int8 AS n FROM ${ident(p.table_name)}`)) as unknown as Array<{ n: number }>;
    const report = await rebuild(sql, [{ table: DEFAULT_TABLE, rev: 0, sub: 0 }, { table: p.table_name, rev: 0, sub: 0 }], [NEXT_DEFAULT], route, opts, async () => {
      await sql.unsafe(`ALTER TABLE kv_log DETACH PARTITION ${ident(DEFAULT_TABLE)}`);
      await sql.unsafe(`ALTER TABLE kv_log DETACH PARTITION ${ident(p.table_name)}`);
      await sql.unsafe(`ALTER TABLE kv_log ATTACH PARTITION ${ident(NEXT_DEFAULT)} DEFAULT`);
      await sql.unsafe(`DROP TABLE ${ident(DEFAULT_TABLE)}`);
      await sql.unsafe(`DROP TABLE ${ident(p.table_name)}`);
      await renameTable(sql, NEXT_DEFAULT, DEFAULT_TABLE);
      await sql`DELETE FROM kv_partitions WHERE kind = ${p.kind}`;
    });
    await restoreOptions(sql, DEFAULT_TABLE, settings);
    return { ...report, kind: p.kind, table: p.table_name, rowsMoved: m!.n };
  });
}

/** Storage parameters `partitions set` accepts (per-table settings a DBA tunes per kind). */
export const TUNABLE = [
  'fillfactor', 'autovacuum_enabled', 'autovacuum_vacuum_threshold', 'autovacuum_vacuum_scale_factor',
  'autovacuum_vacuum_insert_threshold', 'autovacuum_vacuum_insert_scale_factor', 'autovacuum_analyze_threshold',
  'autovacuum_analyze_scale_factor', 'autovacuum_vacuum_cost_delay', 'autovacuum_vacuum_cost_limit',
  'autovacuum_freeze_min_age', 'toast_tuple_target',
] as const;

/** ALTER TABLE ... SET/RESET for one partition ('default' names the default partition). */
export async function setPartitionOptions(sql: Sql, kindOrTable: string, set: Record<string, string>, reset: string[]): Promise<string> {
  const table = await partitionTable(sql, kindOrTable);
  for (const k of [...Object.keys(set), ...reset]) {
    if (!(TUNABLE as readonly string[]).includes(k)) throw new Error(`${k} is not a setting partitions set changes (one of: ${TUNABLE.join(', ')})`);
  }
  for (const [k, v] of Object.entries(set)) {
    if (!/^[A-Za-z0-9_.]+$/.test(v)) throw new Error(`${k}: "${v}" is not a number or on/off`);
  }
  const sets = Object.entries(set).map(([k, v]) => `${k} = ${v}`);
  if (sets.length) await sql.unsafe(`ALTER TABLE ${ident(table)} SET (${sets.join(', ')})`);
  if (reset.length) await sql.unsafe(`ALTER TABLE ${ident(table)} RESET (${reset.join(', ')})`);
  return table;
}

async function partitionTable(sql: Sql, kindOrTable: string): Promise<string> {
  if (kindOrTable === 'default' || kindOrTable === DEFAULT_TABLE) return DEFAULT_TABLE;
  const [p] = (await sql`SELECT table_name FROM kv_partitions WHERE kind = ${kindOrTable} OR table_name = ${kindOrTable}`) as unknown as Array<{ table_name: string }>;
  if (!p) throw new Error(`no partition for ${kindOrTable} (see pgetcd partitions list)`);
  return p.table_name;
}

async function partitionedKinds(sql: Sql): Promise<string[]> {
  // The bounds of the attached partitions, not the map: they are what ATTACH checks against.
  const rows = (await sql`
    SELECT unnest(regexp_split_to_array(substring(pg_get_expr(c.relpartbound, c.oid) FROM '^FOR VALUES IN \\((.*)\\)$'), ', ')) AS v
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'kv_log'::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'`) as unknown as Array<{ v: string }>;
  return rows.map((r) => r.v.replace(/^'(.*)'$/, '$1').replace(/''/g, "'"));
}

/** The default partition's constraint for a set of listed kinds, written as PostgreSQL writes it. */
function defaultCheck(kinds: string[]): string {
  const list = [...kinds].sort().map((k) => `${literal(k)}::text`).join(', ');
  return `CHECK (NOT ((kind IS NOT NULL) AND (kind = ANY (ARRAY[${list}]))))`;
}

async function reloptions(sql: Sql, table: string): Promise<string[]> {
  const [r] = (await sql`SELECT coalesce(reloptions, '{}') AS o FROM pg_class WHERE oid = to_regclass(${table})`) as unknown as Array<{ o: string[] }>;
  return r?.o ?? [];
}

/**
 * Autovacuum off on the tables being copied from, for the same reason as on the new ones; if
 * the change fails their own settings come back (on success they are dropped).
 */
async function pauseAutovacuum(sql: Sql, pending: PendingRestore, tables: string[], settings: string[][]): Promise<void> {
  tables.forEach((t, i) => pending.push([t, settings[i]!]));
  for (const t of tables) await sql.unsafe(`ALTER TABLE ${ident(t)} SET (autovacuum_enabled = false)`);
}

/** Tables whose storage settings one change altered and must put back if it fails (per change, never shared). */
type PendingRestore = Array<readonly [table: string, settings: string[]]>;

/** The table's storage settings become exactly `settings` (autovacuum back on unless listed). */
async function restoreOptions(sql: Sql, table: string, settings: string[]): Promise<void> {
  await sql.unsafe(`ALTER TABLE ${ident(table)} RESET (autovacuum_enabled)`);
  if (settings.length) await sql.unsafe(`ALTER TABLE ${ident(table)} SET (${settings.join(', ')})`);
}

/** A fresh detached table shaped like kv_log, with its partition constraint as a CHECK. */
async function prepareTable(sql: Sql, table: string, check: string): Promise<void> {
  // A table of that name left detached by an interrupted change is dropped and made again.
  const [attached] = (await sql`SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(${table})`) as unknown as unknown[];
  if (attached) throw new Error(`${table} is attached to a table; refusing to replace it`);
  await sql.unsafe(`DROP TABLE IF EXISTS ${ident(table)}`);
  // Autovacuum stays off until the swap: one running at swap time would hold the swap for
  // deadlock_timeout before PostgreSQL cancels it.
  await sql.unsafe(`CREATE TABLE ${ident(table)} (LIKE kv_log INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMMENTS) WITH (autovacuum_enabled = false)`);
  await sql.unsafe(`ALTER TABLE ${ident(table)} ADD CONSTRAINT ${ident(`${table}_kind`.slice(0, 63))} ${check}`);
}

/** Renames a table built here with its primary key, revision index and CHECK constraint. */
async function renameTable(sql: Sql, from: string, to: string): Promise<void> {
  await sql.unsafe(`ALTER TABLE ${ident(from)} RENAME TO ${ident(to)}`);
  await sql.unsafe(`ALTER INDEX ${ident(`${from}_pkey`)} RENAME TO ${ident(`${to}_pkey`)}`);
  await sql.unsafe(`ALTER INDEX ${ident(`${from}_revision`)} RENAME TO ${ident(`${to}_revision`)}`);
  await sql.unsafe(`ALTER TABLE ${ident(to)} RENAME CONSTRAINT ${ident(`${from}_kind`)} TO ${ident(`${to}_kind`)}`);
}

async function withChangeLocks<T>(sql: Sql, fn: (pending: PendingRestore) => Promise<T>): Promise<T> {
  const [l] = (await sql`SELECT pg_try_advisory_lock(${PARTITION_LOCK}) AS got`) as unknown as Array<{ got: boolean }>;
  if (!l!.got) throw new Error('another partition change is running');
  try {
    // Physical compaction waits (it takes this lock per chunk with a try): kv_log rows then
    // only ever appear, never vanish, while the copy runs.
    await sql`SELECT pg_advisory_lock(${COMPACT_LOCK})`;
    const pending: PendingRestore = [];
    try {
      return await fn(pending);
    } catch (err) {
      // The swap did not happen: the old tables are still the live ones.
      for (const [t, o] of pending) await restoreOptions(sql, t, o).catch(() => undefined);
      throw err;
    } finally {
      await sql`SELECT pg_advisory_unlock(${COMPACT_LOCK})`;
    }
  } finally {
    await sql`SELECT pg_advisory_unlock(${PARTITION_LOCK})`;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Copies every source's rows into the targets through `route` (INSERT CTEs named a and b over
 * a CTE named src), catches up, then runs `swap` in the short locked transaction.
 */
async function rebuild(
  sql: Sql, sources: Source[], targets: string[], route: (src: string) => string, opts: MoveOptions,
  swap: () => Promise<void>,
): Promise<Omit<MoveReport, 'kind' | 'table' | 'rowsMoved'>> {
  const started = Date.now();
  const batch = opts.batchRows ?? 10_000;
  let total = 0;
  for (const s of sources) {
    const [c] = (await sql.unsafe(`SELECT count(*)::int8 AS n FROM ${ident(s.table)}`)) as unknown as Array<{ n: number }>;
    total += c!.n;
  }
  let copied = 0;
  let passes = 0;
  const copyPass = async (bounded: boolean): Promise<number> => {
    passes++;
    const [m] = (await sql`SELECT revision FROM meta WHERE id = 1`) as unknown as Array<{ revision: number }>;
    const hi = bounded ? m!.revision : Number.MAX_SAFE_INTEGER;
    let n = 0;
    for (const s of sources) {
      for (;;) {
        const [r] = (await sql.unsafe(`
          WITH src AS MATERIALIZED (
            SELECT * FROM ${ident(s.table)}
            WHERE (mod_revision, sub) > ($1::int8, $2::int4) AND mod_revision <= $3::int8
            ORDER BY mod_revision, sub LIMIT ${batch}
          ), ${route('src')},
          last AS (SELECT mod_revision, sub FROM src ORDER BY mod_revision DESC, sub DESC LIMIT 1)
          SELECT (SELECT count(*) FROM src)::int8 AS n, (SELECT mod_revision FROM last) AS rev, (SELECT sub FROM last) AS sub,
                 (SELECT count(*) FROM a) + (SELECT count(*) FROM b) AS written`, [s.rev, s.sub, hi])) as unknown as Array<{ n: number; rev: number | null; sub: number | null }>;
        if (!r || r.n === 0) break;
        s.rev = r.rev!;
        s.sub = r.sub!;
        n += r.n;
        copied += r.n;
        opts.onProgress?.(copied, Math.max(total, copied));
        if (r.n < batch) break;
        if (opts.pauseMs) await sleep(opts.pauseMs);
      }
    }
    return n;
  };
  await copyPass(true);
  // Indexes after the bulk copy (faster than maintaining them row by row); ATTACH adopts them.
  for (const t of targets) {
    await sql.unsafe(`ALTER TABLE ${ident(t)} ADD CONSTRAINT ${ident(`${t}_pkey`.slice(0, 63))} PRIMARY KEY (key, mod_revision, kind)`);
    await sql.unsafe(`CREATE INDEX ${ident(`${t}_revision`.slice(0, 63))} ON ${ident(t)} (mod_revision, sub)`);
  }
  // Catch up on what was written during the bulk copy until one pass finds little.
  for (let i = 0; i < 10; i++) {
    if ((await copyPass(true)) < batch) break;
  }
  const lockTimeout = opts.lockTimeoutMs ?? 500;
  let lockRetries = 0;
  let swapMs = 0;
  for (;;) {
    const t0 = Date.now();
    const saved = sources.map((x) => ({ ...x }));
    const copiedBefore = copied;
    try {
      await sql.unsafe('BEGIN');
      await sql.unsafe(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeout))}`);
      await sql.unsafe('LOCK TABLE kv_log IN ACCESS EXCLUSIVE MODE');
      await sql.unsafe('SET LOCAL lock_timeout = 0');
      await copyPass(false);
      await swap();
      await sql.unsafe('COMMIT');
      swapMs = Date.now() - t0;
      break;
    } catch (err) {
      await sql.unsafe('ROLLBACK').catch(() => undefined);
      if ((err as { code?: string }).code !== '55P03' || lockRetries >= 50) throw err;
      lockRetries++;
      // The rolled-back pass copied nothing: back to the cursors of the last committed pass.
      saved.forEach((x, i) => Object.assign(sources[i]!, x));
      copied = copiedBefore;
      await sleep(Math.min(2000, 50 * lockRetries));
      await copyPass(true);
    }
  }
  // Autovacuum never analyses a partitioned parent; the planner's row estimates for kv_log
  // come from an ANALYZE of it.
  for (const t of [...targets.slice(0, -1), DEFAULT_TABLE]) await sql.unsafe(`ANALYZE ${ident(t)}`);
  await sql.unsafe('ANALYZE kv_log');
  return { rowsCopied: copied, passes, lockRetries, swapMs, seconds: (Date.now() - started) / 1000 };
}
