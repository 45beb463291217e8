/**
 * Operator measurements on a large log (issue 17): `node --import tsx bench/ops.ts <what> --database-url URL`
 *
 *   load        fills an empty database with --revisions N (1,000,000) revisions of one CRD kind
 *               (--keys K distinct keys, 100,000; --val-size B, 256) straight through SQL, and
 *               prints bytes per revision and per live key
 *   partition   puts on a running pgetcd (--clients C, 50) while `partitions add` moves the kind
 *               out of DEFAULT: add time, swap time, put p50/p99/max and the longest time no put
 *               completed, in --seconds (20) before, during, and --seconds after
 *   compaction  puts (--clients C, 8) for --seconds (30) after --warmup (10), then while
 *               compacting all but the last --keep (100,000) revisions: rows/s, WAL bytes, put
 *               p99 with and without compaction; then the same on a fresh etcd filled with the
 *               same revisions through its API (--target pgetcd|etcd|both)
 *   import      `pgetcd import --from-kine` from a kine table of --revisions rows over --keys
 *               names, and `--from-etcd` from a fresh etcd holding --keys keys: keys/s
 *
 * The database URL must name an empty database for `load` (it is migrated first); partition and
 * compaction run on what `load` left (copy it first: CREATE DATABASE x TEMPLATE loaded); import
 * creates databases of its own on that server. pgetcd runs as a child process on --port (23990).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { migrate } from '../src/db/migrate.ts';
import { createSql, type Sql } from '../src/db/sql.ts';
import { targetFromUrl } from '../src/db/target.ts';
import { createLogger } from '../src/log.ts';
import type { MoveReport } from '../src/ops/partitions.ts';
import { rawClients, type Raw } from '../test/helpers/raw.ts';
import { findEtcd, startEtcd } from './targets.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KIND = 'example.com/widgets';
const PREFIX = `/registry/${KIND}/`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'database-url': { type: 'string' }, revisions: { type: 'string' }, keys: { type: 'string' }, 'val-size': { type: 'string' },
    clients: { type: 'string' }, port: { type: 'string' }, keep: { type: 'string' }, 'batch-rows': { type: 'string' },
    'rows-per-second': { type: 'string' }, seconds: { type: 'string' }, warmup: { type: 'string' }, target: { type: 'string' },
  },
});
const url = values['database-url'] ?? process.env.PGETCD_BENCH_DATABASE_URL;
if (!url) throw new Error('--database-url is required');
const num = (v: string | undefined, d: number): number => (v === undefined ? d : Number(v));

async function load(sql: Sql): Promise<void> {
  const revisions = num(values.revisions, 1_000_000);
  const keys = num(values.keys, 100_000);
  const valSize = num(values['val-size'], 256);
  await migrate(targetFromUrl(url!), createLogger('warn'));
  const t0 = Date.now();
  // Revision r (2..N+1) writes key (r-2) % K; its version, create and previous revisions follow.
  const step = 100_000;
  for (let lo = 2; lo <= revisions + 1; lo += step) {
    const hi = Math.min(revisions + 1, lo + step - 1);
    await sql`
      INSERT INTO kv_log (mod_revision, sub, create_revision, prev_revision, version, lease, deleted, kind, key, value)
      SELECT r, 0, 2 + (r - 2) % ${keys}, CASE WHEN r - ${keys} >= 2 THEN r - ${keys} ELSE 0 END, (r - 2) / ${keys} + 1, 0, false, ${KIND},
             convert_to(${PREFIX} || 'ns/w' || lpad(((r - 2) % ${keys})::text, 8, '0'), 'UTF8'),
             convert_to(substr(repeat(md5(r::text), ${Math.ceil(valSize / 32)}), 1, ${valSize}), 'UTF8')
      FROM generate_series(${lo}::int8, ${hi}::int8) r`;
    process.stderr.write(`\rloaded ${hi - 1} revisions`);
  }
  await sql`
    INSERT INTO kv_current (key, mod_revision, create_revision, version, lease, value)
    SELECT DISTINCT ON (key) key, mod_revision, create_revision, version, lease, value FROM kv_log ORDER BY key, mod_revision DESC`;
  await sql`UPDATE meta SET revision = ${revisions + 1}`;
  await sql`VACUUM ANALYZE kv_log_default`;
  await sql`ANALYZE kv_log`;
  await sql`VACUUM ANALYZE kv_current`;
  const [s] = (await sql`SELECT pg_total_relation_size('kv_log_default')::int8 AS log, pg_total_relation_size('kv_current')::int8 AS cur,
    pg_relation_size('kv_log_default')::int8 AS heap, pg_indexes_size('kv_log_default')::int8 AS idx`) as unknown as Array<{ log: number; cur: number; heap: number; idx: number }>;
  console.log(`\nloaded ${revisions} revisions over ${keys} keys (${valSize}-byte values) in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  console.log(`kv_log: ${s!.log} bytes = ${(s!.log / revisions).toFixed(0)} bytes/revision (heap ${(s!.heap / revisions).toFixed(0)}, indexes ${(s!.idx / revisions).toFixed(0)})`);
  console.log(`kv_current: ${s!.cur} bytes = ${(s!.cur / keys).toFixed(0)} bytes/live key`);
}

function startServer(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'pgetcd.js'), '--endpoint', url!, '--listen-client-urls', `http://127.0.0.1:${port}`, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('serving etcd gRPC')) resolve(child); });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('exit', (c) => reject(new Error(`pgetcd exited ${c}: ${out}`)));
  });
}

interface Sample { at: number; ms: number }

/** Closed-loop puts from `clients` clients until stop(); every put's start time and latency. */
function putLoad(raw: Raw, clients: number): { samples: Sample[]; stop: () => Promise<void> } {
  const samples: Sample[] = [];
  let stopped = false;
  const loops = Array.from({ length: clients }, (_, c) => (async () => {
    for (let i = 0; !stopped; i++) {
      const t = performance.now();
      await raw.call('KV', 'Put', { key: Buffer.from(`${PREFIX}load/c${c}-${i % 1000}`), value: Buffer.alloc(256, 120) });
      samples.push({ at: t, ms: performance.now() - t });
    }
  })());
  return { samples, stop: async () => { stopped = true; await Promise.all(loops); } };
}

function summary(xs: number[]): string {
  if (!xs.length) return 'no samples';
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `n=${s.length} p50=${q(0.5).toFixed(1)}ms p99=${q(0.99).toFixed(1)}ms max=${s[s.length - 1]!.toFixed(1)}ms`;
}

function window(samples: Sample[], from: number, to: number): number[] {
  return samples.filter((s) => s.at >= from && s.at < to).map((s) => s.ms);
}

/** The longest time no put completed, in [from, to]: the stall every writer saw at once. */
function longestGap(samples: Sample[], from: number, to: number): number {
  const done = samples.map((s) => s.at + s.ms).filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let gap = 0;
  let prev = from;
  for (const t of [...done, to]) { gap = Math.max(gap, t - prev); prev = t; }
  return gap;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const loadAvg = (): string => `load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`;

async function walLsn(sql: Sql): Promise<string> {
  const [r] = (await sql`SELECT pg_current_wal_lsn()::text AS l`) as unknown as Array<{ l: string }>;
  return r!.l;
}

async function walBytes(sql: Sql, from: string): Promise<number> {
  const [r] = (await sql`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), ${from}::pg_lsn)::int8 AS n`) as unknown as Array<{ n: number }>;
  return r!.n;
}

async function withPgetcd<T>(fn: (raw: Raw, sql: Sql) => Promise<T>): Promise<T> {
  const port = num(values.port, 23990);
  const server = await startServer(port);
  const raw = rawClients(`127.0.0.1:${port}`);
  const sql = createSql(targetFromUrl(url!), { max: 1 });
  try {
    return await fn(raw, sql);
  } finally {
    raw.close();
    await sql.end();
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
}

async function withEtcd<T>(fn: (raw: Raw, endpoint: string) => Promise<T>): Promise<T> {
  const bin = findEtcd();
  if (!bin) throw new Error('etcd is not on PATH');
  const etcd = await startEtcd(bin, false, (m) => process.stderr.write(`${m}\n`));
  const raw = rawClients(etcd.endpoints[0]!);
  try {
    return await fn(raw, etcd.endpoints[0]!);
  } finally {
    raw.close();
    await etcd.stop();
  }
}

/** The same revisions `load` writes through SQL, written through the API (for etcd): `concurrency` puts in flight. */
async function fillThroughApi(raw: Raw, revisions: number, keys: number, valSize: number, concurrency = 64): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (;;) {
      const r = next++;
      if (r >= revisions) return;
      const k = r % keys;
      const v = Buffer.from(createHash('md5').update(String(r + 2)).digest('hex').repeat(Math.ceil(valSize / 32)).slice(0, valSize));
      await raw.call('KV', 'Put', { key: Buffer.from(`${PREFIX}ns/w${String(k).padStart(8, '0')}`), value: v });
      if (r % 50_000 === 0) process.stderr.write(`\rfilled ${r} revisions`);
    }
  }));
  process.stderr.write('\n');
  return (performance.now() - t0) / 1000;
}

async function headRevision(raw: Raw): Promise<number> {
  const r = await raw.call('KV', 'Range', { key: Buffer.from('bench-head') });
  return Number(r.header.revision);
}

async function partition(): Promise<void> {
  const clients = num(values.clients, 50);
  const warmup = num(values.warmup, 10) * 1000;
  const baseline = num(values.seconds, 20) * 1000;
  console.log(`partition: ${clients} writers; ${loadAvg()}`);
  await withPgetcd(async (raw, sql) => {
    const [c] = (await sql`SELECT count(*)::int8 AS n FROM kv_log`) as unknown as Array<{ n: number }>;
    const w = putLoad(raw, clients);
    await sleep(warmup);
    const b0 = performance.now();
    await sleep(baseline);
    const t0 = performance.now();
    const wal = await walLsn(sql);
    // The command a DBA runs, in a process of its own (its timings are not this event loop's).
    const rep = await new Promise<MoveReport>((resolve, reject) => execFile(process.execPath,
      [path.join(ROOT, 'bin', 'pgetcd.js'), 'partitions', 'add', KIND, '--endpoint', url!, '--batch-rows', String(num(values['batch-rows'], 10_000)), '-o', 'json'],
      { maxBuffer: 1 << 24 }, (err, out) => (err ? reject(err) : resolve(JSON.parse(out) as MoveReport))));
    const t1 = performance.now();
    await sleep(baseline);
    const t2 = performance.now();
    await w.stop();
    console.log(`kv_log had ${c!.n} rows; partitions add ${KIND}: ${rep.rowsMoved} rows moved, ${rep.rowsCopied} copied, ${rep.seconds.toFixed(1)} s, ${rep.passes} passes, swap ${rep.swapMs} ms, ${rep.lockRetries} lock retries, WAL ${(await walBytes(sql, wal)) >> 20} MiB`);
    console.log(`puts before (${baseline / 1000} s): ${summary(window(w.samples, b0, t0))}; longest time with no put completing ${longestGap(w.samples, b0, t0).toFixed(0)} ms`);
    console.log(`puts during add:      ${summary(window(w.samples, t0, t1))}; longest time with no put completing ${longestGap(w.samples, t0, t1).toFixed(0)} ms`);
    console.log(`longest put that overlapped the add: ${Math.max(...w.samples.filter((x) => x.at < t1 && x.at + x.ms > t0).map((x) => x.ms)).toFixed(1)} ms`);
    console.log(`puts after (${baseline / 1000} s):  ${summary(window(w.samples, t1, t2))}`);
  });
  console.log(`end: ${loadAvg()}`);
}

interface CompactionRun { target: string; removed: string; secs: number; before: number[]; during: number[] }

/** Puts for a baseline window, then a physical Compact of all but the last --keep revisions while the puts go on. */
async function compactUnderLoad(raw: Raw, target: string, removedRows: (() => Promise<number>) | undefined, atStart?: (rev: number) => Promise<void>): Promise<CompactionRun> {
  const w = putLoad(raw, num(values.clients, 8));
  await sleep(num(values.warmup, 10) * 1000);
  const b0 = performance.now();
  await sleep(num(values.seconds, 30) * 1000);
  const rev = (await headRevision(raw)) - num(values.keep, 100_000);
  await atStart?.(rev);
  const t0 = performance.now();
  await raw.call('KV', 'Compact', { revision: rev, physical: true });
  const t1 = performance.now();
  await w.stop();
  const secs = (t1 - t0) / 1000;
  const removed = removedRows ? `${await removedRows()} rows removed (${((await removedRows()) / secs).toFixed(0)} rows/s)` : `compacted to ${rev}`;
  return { target, removed, secs, before: window(w.samples, b0, t0), during: window(w.samples, t0, t1) };
}

async function compaction(): Promise<void> {
  const which = values.target ?? 'both';
  console.log(`compaction: ${num(values.clients, 8)} writers, keep ${num(values.keep, 100_000)} revisions; ${loadAvg()}`);
  const runs: CompactionRun[] = [];
  if (which !== 'etcd') {
    runs.push(await withPgetcd(async (raw, sql) => {
      // Rows at or below the compact revision only ever go away: their count before and after is what compaction removed.
      let rev = 0;
      const count = async (): Promise<number> => ((await sql`SELECT count(*)::int8 AS n FROM kv_log WHERE mod_revision <= ${rev}`) as unknown as Array<{ n: number }>)[0]!.n;
      const [all] = (await sql`SELECT count(*)::int8 AS n FROM kv_log`) as unknown as Array<{ n: number }>;
      const before = all!.n;
      let wal = '';
      let below = 0;
      let walBase = 0;
      let removed = -1;
      const r = await compactUnderLoad(raw, 'pgetcd', async () => {
        if (removed < 0) { walBase = await walBytes(sql, wal); removed = below - (await count()); }
        return removed;
      }, async (at) => { rev = at; below = await count(); wal = await walLsn(sql); });
      r.removed += `, WAL ${walBase >> 20} MiB from Compact to its answer (the puts meanwhile included); kv_log had ${before} rows`;
      return r;
    }));
  }
  if (which !== 'pgetcd') {
    runs.push(await withEtcd(async (raw) => {
      const secs = await fillThroughApi(raw, num(values.revisions, 1_000_000), num(values.keys, 100_000), num(values['val-size'], 256));
      process.stderr.write(`etcd: filled in ${secs.toFixed(0)} s\n`);
      return compactUnderLoad(raw, 'etcd', undefined);
    }));
  }
  for (const r of runs) {
    console.log(`${r.target}: compaction ${r.secs.toFixed(1)} s, ${r.removed}`);
    console.log(`${r.target}:   puts without compaction: ${summary(r.before)}`);
    console.log(`${r.target}:   puts during compaction:  ${summary(r.during)}`);
  }
  console.log(`end: ${loadAvg()}`);
}

const KINE_SCHEMA = [
  `CREATE TABLE kine (
     id SERIAL PRIMARY KEY, name VARCHAR(630), created INTEGER, deleted INTEGER, create_revision INTEGER,
     prev_revision INTEGER, lease INTEGER, value bytea, old_value bytea)`,
  'CREATE INDEX kine_name_index ON kine (name)',
  'CREATE INDEX kine_name_id_index ON kine (name, id)',
  'CREATE INDEX kine_id_deleted_index ON kine (id, deleted)',
  'CREATE INDEX kine_prev_revision_index ON kine (prev_revision)',
  'CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON kine (name, prev_revision)',
];

/** A fresh database of this name on --database-url's server; returns its URL. */
async function freshDatabase(admin: Sql, name: string): Promise<string> {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name}`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const u = new URL(url!);
  u.pathname = `/${name}`;
  return u.toString();
}

function runCli(args: string[]): { keys: number; seconds: number; keysPerSecond: number } {
  const out = execFileSync(process.execPath, [path.join(ROOT, 'bin', 'pgetcd.js'), ...args, '-o', 'json'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return JSON.parse(out) as { keys: number; seconds: number; keysPerSecond: number };
}

/**
 * `pgetcd import` from a kine table of --revisions rows over --keys names (every name updated
 * until its last version, a tenth of them deleted at the end) and from a live etcd holding --keys
 * keys, each into a fresh database on --database-url's server (whose own database is only used
 * to create them).
 */
async function importBench(sql: Sql): Promise<void> {
  const revisions = num(values.revisions, 1_000_000);
  const keys = num(values.keys, 100_000);
  const valSize = num(values['val-size'], 256);
  console.log(`import: kine table of ${revisions} rows over ${keys} names, etcd with ${keys} keys, ${valSize}-byte values; ${loadAvg()}`);
  const kineUrl = await freshDatabase(sql, 'pgetcd_bench_kine');
  const kine = createSql(targetFromUrl(kineUrl), { max: 1 });
  try {
    for (const s of KINE_SCHEMA) await kine.unsafe(s);
    // Row r (1..N) writes name (r-1) % K; prev_revision is the name's previous row.
    await kine`
      INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value)
      SELECT r, ${PREFIX} || 'ns/w' || lpad(((r - 1) % ${keys})::text, 8, '0'), CASE WHEN r <= ${keys} THEN 1 ELSE 0 END, 0,
             1 + (r - 1) % ${keys}, CASE WHEN r > ${keys} THEN r - ${keys} ELSE 0 END, 0,
             convert_to(substr(repeat(md5(r::text), ${Math.ceil(valSize / 32)}), 1, ${valSize}), 'UTF8'), NULL
      FROM generate_series(1, ${revisions}) r`;
    await kine`
      INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value)
      SELECT ${revisions} + 1 + i, ${PREFIX} || 'ns/w' || lpad((i * 10)::text, 8, '0'), 0, 1, 0,
             i * 10 + 1 + ${keys} * ((${revisions} - 1 - i * 10) / ${keys}), 0, NULL, NULL
      FROM generate_series(0, ${Math.floor(keys / 10) - 1}) i`;
    await kine`SELECT setval('kine_id_seq', (SELECT max(id) FROM kine))`;
    await kine`ANALYZE kine`;
  } finally {
    await kine.end();
  }
  const kineTarget = await freshDatabase(sql, 'pgetcd_bench_import_kine');
  execFileSync(process.execPath, [path.join(ROOT, 'bin', 'pgetcd.js'), 'migrate', 'up', '--endpoint', kineTarget]);
  const k = runCli(['import', '--from-kine', kineUrl, '--endpoint', kineTarget]);
  const etcdTarget = await freshDatabase(sql, 'pgetcd_bench_import_etcd');
  execFileSync(process.execPath, [path.join(ROOT, 'bin', 'pgetcd.js'), 'migrate', 'up', '--endpoint', etcdTarget]);
  const { e, fill } = await withEtcd(async (raw, endpoint) => {
    const fill = await fillThroughApi(raw, keys, keys, valSize);
    return { e: runCli(['import', '--from-etcd', endpoint, '--endpoint', etcdTarget]), fill };
  });
  console.log(`--from-kine: ${k.keys} keys in ${k.seconds.toFixed(1)} s = ${k.keysPerSecond.toFixed(0)} keys/s (read, write, verify)`);
  console.log(`--from-etcd: ${e.keys} keys in ${e.seconds.toFixed(1)} s = ${e.keysPerSecond.toFixed(0)} keys/s (read, write, verify)`);
  console.log(`reference: the same ${keys} keys put into etcd by 64 concurrent clients took ${fill.toFixed(1)} s = ${(keys / fill).toFixed(0)} keys/s`);
  console.log(`end: ${loadAvg()}`);
}

const sql = createSql(targetFromUrl(url), { max: 2 });
try {
  switch (positionals[0]) {
    case 'load': await load(sql); break;
    case 'partition': await partition(); break;
    case 'compaction': await compaction(); break;
    case 'import': await importBench(sql); break;
    default: throw new Error('say load, partition, compaction or import');
  }
} finally {
  await sql.end();
}
