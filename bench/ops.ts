/**
 * Operator measurements on a large log (issue 17): `node --import tsx bench/ops.ts <what> --database-url URL`
 *
 *   load        fills an empty database with --revisions N (1,000,000) revisions of one CRD kind
 *               (--keys K distinct keys, 100,000; --val-size B, 256) straight through SQL, and
 *               prints bytes per revision and per live key
 *   partition   puts on a running pgetcd (--clients C, 8) while `partitions add` moves the kind
 *               out of DEFAULT: add time, swap time, put p50/p99/max before and during
 *   compaction  the same puts while compacting all but the last --keep revisions: rows/s, WAL
 *               bytes, put p99 with and without compaction
 *
 * The database URL must name an empty database for `load` (it is migrated first); the other two
 * run on what `load` left. pgetcd runs as a child process on --port (23990).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { migrate } from '../src/db/migrate.ts';
import { createSql, type Sql } from '../src/db/sql.ts';
import { targetFromUrl } from '../src/db/target.ts';
import { createLogger } from '../src/log.ts';
import { addPartition } from '../src/ops/partitions.ts';
import { rawClients, type Raw } from '../test/helpers/raw.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KIND = 'example.com/widgets';
const PREFIX = `/registry/${KIND}/`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'database-url': { type: 'string' }, revisions: { type: 'string' }, keys: { type: 'string' }, 'val-size': { type: 'string' },
    clients: { type: 'string' }, port: { type: 'string' }, keep: { type: 'string' }, 'batch-rows': { type: 'string' },
    'rows-per-second': { type: 'string' }, seconds: { type: 'string' },
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

async function walLsn(sql: Sql): Promise<string> {
  const [r] = (await sql`SELECT pg_current_wal_lsn()::text AS l`) as unknown as Array<{ l: string }>;
  return r!.l;
}

async function walBytes(sql: Sql, from: string): Promise<number> {
  const [r] = (await sql`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), ${from}::pg_lsn)::int8 AS n`) as unknown as Array<{ n: number }>;
  return r!.n;
}

async function withLoad(fn: (raw: Raw, sql: Sql) => Promise<void>): Promise<void> {
  const port = num(values.port, 23990);
  const server = await startServer(port);
  const raw = rawClients(`127.0.0.1:${port}`);
  const sql = createSql(targetFromUrl(url!), { max: 1 });
  try {
    await fn(raw, sql);
  } finally {
    raw.close();
    await sql.end();
    server.kill('SIGTERM');
  }
}

async function partition(): Promise<void> {
  await withLoad(async (raw, sql) => {
    const load = putLoad(raw, num(values.clients, 8));
    await new Promise((r) => setTimeout(r, 10_000));
    const t0 = performance.now();
    const wal = await walLsn(sql);
    const rep = await addPartition(sql, KIND, { batchRows: num(values['batch-rows'], 10_000) });
    const t1 = performance.now();
    await new Promise((r) => setTimeout(r, 2000));
    await load.stop();
    console.log(`partitions add ${KIND}: ${rep.rowsMoved} rows moved, ${rep.rowsCopied} copied, ${rep.seconds.toFixed(1)} s, ${rep.passes} passes, swap ${rep.swapMs} ms, ${rep.lockRetries} lock retries, WAL ${(await walBytes(sql, wal)) >> 20} MiB`);
    console.log(`puts before:  ${summary(load.samples.filter((s) => s.at < t0).map((s) => s.ms))}`);
    console.log(`puts during:  ${summary(load.samples.filter((s) => s.at >= t0 && s.at <= t1).map((s) => s.ms))}`);
    console.log(`puts after:   ${summary(load.samples.filter((s) => s.at > t1).map((s) => s.ms))}`);
  });
}

async function compaction(): Promise<void> {
  await withLoad(async (raw, sql) => {
    const load = putLoad(raw, num(values.clients, 8));
    await new Promise((r) => setTimeout(r, num(values.seconds, 10) * 1000));
    const [m] = (await sql`SELECT revision FROM meta`) as unknown as Array<{ revision: number }>;
    const [before] = (await sql`SELECT count(*)::int8 AS n FROM kv_log`) as unknown as Array<{ n: number }>;
    const target = m!.revision - num(values.keep, 100_000);
    const wal = await walLsn(sql);
    const t0 = performance.now();
    await raw.call('KV', 'Compact', { revision: target, physical: true });
    const t1 = performance.now();
    const [after] = (await sql`SELECT count(*)::int8 AS n FROM kv_log`) as unknown as Array<{ n: number }>;
    const removed = before!.n - after!.n;
    await new Promise((r) => setTimeout(r, 2000));
    await load.stop();
    const secs = (t1 - t0) / 1000;
    console.log(`compact at ${target}: ${removed} rows removed in ${secs.toFixed(1)} s = ${(removed / secs).toFixed(0)} rows/s, WAL ${(await walBytes(sql, wal)) >> 20} MiB`);
    console.log(`puts without compaction: ${summary(load.samples.filter((s) => s.at < t0).map((s) => s.ms))}`);
    console.log(`puts during compaction:  ${summary(load.samples.filter((s) => s.at >= t0 && s.at <= t1).map((s) => s.ms))}`);
  });
}

const sql = createSql(targetFromUrl(url), { max: 2 });
try {
  switch (positionals[0]) {
    case 'load': await load(sql); break;
    case 'partition': await partition(); break;
    case 'compaction': await compaction(); break;
    default: throw new Error('say load, partition or compaction');
  }
} finally {
  await sql.end();
}
