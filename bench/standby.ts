/**
 * Reads from a hot standby, measured (docs/scaling.md quotes it):
 *
 *   flock /tmp/pgetcd-bench.lock node bench/standby.ts [--keys 10000] [--clients 4] [--seconds 15]
 *
 * Debian's PostgreSQL runs a primary and one asynchronous streaming hot standby
 * (test/helpers/pgcluster.ts, as the failover and standby tests). Two pgetcd processes share the
 * primary: one without --read-endpoint, one with the standby. After loading `--keys` keys of 1 KiB:
 *
 * 1. paginated lists as kube-apiserver pages them (first page linearizable at the head, limit
 *    500, every later page at the first page's revision), `--clients` in a closed loop, through
 *    each pgetcd in turn: lists/s and the primary's PostgreSQL CPU per list (/proc of the
 *    postmaster and its children), with and without the standby taking the later pages;
 * 2. serializable lists (every page may go to the standby): the standby's read throughput;
 * 3. puts from 32 writers: puts/s, the primary's PostgreSQL CPU and WAL bytes per put (inside
 *    group-commit batches), and the standby's replay lag (pg_stat_replication.replay_lag and
 *    replay LSN distance, sampled every 100 ms);
 * 4. the same list and put loads against etcd (when on PATH), for ratios.
 */
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { startPgCluster, pgClusterMissing } from '../test/helpers/pgcluster.ts';
import { rawClients, type Raw } from '../test/helpers/raw.ts';
import { freePort, startServerProcess, type ServerProcess } from '../test/helpers/server.ts';
import { treeCpuSeconds } from './procstat.ts';
import { findEtcd, startEtcd } from './targets.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const KEYS = arg('keys', 10_000);
const CLIENTS = arg('clients', 4);
const SECONDS = arg('seconds', 15);
const WRITERS = 32;
const LIMIT = 500;
const PREFIX = '/registry/pods/default/';
const END = '/registry/pods/default0';
const VALUE = Buffer.alloc(1024, 'v');

interface RangeResp { header: { revision: string }; kvs: Array<{ key: Buffer }>; more: boolean }

function pid(dataDir: string): number {
  return Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

async function load(raw: Raw): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < KEYS) {
      const i = next++;
      await raw.call('KV', 'Put', { key: Buffer.from(`${PREFIX}${String(i).padStart(8, '0')}`), value: VALUE });
    }
  }));
}

/** One list, every page; the first page linearizable (or serializable), later pages at its revision. */
async function list(raw: Raw, serializable: boolean): Promise<number> {
  let key = Buffer.from(PREFIX);
  let rev = '0';
  let pages = 0;
  let n = 0;
  for (;;) {
    const r = await raw.call<RangeResp>('KV', 'Range', { key, range_end: Buffer.from(END), limit: LIMIT, revision: rev, serializable });
    pages++;
    n += r.kvs.length;
    if (rev === '0') rev = r.header.revision;
    if (!r.more) break;
    key = Buffer.concat([r.kvs[r.kvs.length - 1]!.key, Buffer.from([0])]);
  }
  if (n !== KEYS) throw new Error(`list returned ${n} keys, not ${KEYS}`);
  return pages;
}

interface Cpu { [what: string]: number }

async function measure(what: string, cpu: () => Cpu, clients: number, op: () => Promise<unknown>): Promise<{ ops: number; perSec: number; cpu: Cpu }> {
  const before = cpu();
  const t0 = performance.now();
  let ops = 0;
  let stop = false;
  const timer = setTimeout(() => { stop = true; }, SECONDS * 1000);
  await Promise.all(Array.from({ length: clients }, async () => {
    while (!stop) {
      await op();
      ops++;
    }
  }));
  clearTimeout(timer);
  const secs = (performance.now() - t0) / 1000;
  const after = cpu();
  const used: Cpu = {};
  for (const k of Object.keys(after)) used[k] = after[k]! - (before[k] ?? 0);
  const r = { ops, perSec: ops / secs, cpu: used };
  const per = Object.entries(used).map(([k, v]) => `${k} ${(v * 1000 / Math.max(1, ops)).toFixed(2)} ms`).join(', ');
  console.log(`${what}: ${ops} in ${secs.toFixed(1)} s = ${r.perSec.toFixed(1)}/s; CPU per op: ${per}`);
  return r;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN;
}

async function main(): Promise<void> {
  const why = pgClusterMissing();
  if (why) {
    console.log(`skipped: ${why}`);
    return;
  }
  console.log(`uptime: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (load average); keys ${KEYS} x 1 KiB, clients ${CLIENTS}, ${SECONDS} s per phase`);
  const cluster = await startPgCluster({ standbys: 1, sync: false, settings: ['shared_buffers=256MB'] });
  const procs: ServerProcess[] = [];
  try {
    const admin = cluster.primary.sql();
    await admin.unsafe('CREATE DATABASE pgetcd');
    await admin.end();
    const a = await startServerProcess(cluster.primary.url('pgetcd'), await freePort(), []);
    procs.push(a);
    const b = await startServerProcess(cluster.primary.url('pgetcd'), await freePort(), ['--read-endpoint', cluster.standbys[0]!.url('pgetcd')]);
    procs.push(b);
    const rawA = rawClients(a.endpoint);
    const rawB = rawClients(b.endpoint);
    await load(rawA);
    const primaryPid = pid(cluster.primary.dataDir);
    const standbyPid = pid(cluster.standbys[0]!.dataDir);
    const cpu = (): Cpu => ({
      'primary postgres': treeCpuSeconds([primaryPid]),
      'standby postgres': treeCpuSeconds([standbyPid]),
      'pgetcd node': treeCpuSeconds([a.child.pid!, b.child.pid!]),
    });
    // Warm both instances and both servers' caches.
    for (let i = 0; i < 3; i++) { await list(rawA, false); await list(rawB, false); await list(rawB, true); }

    const without = await measure('pgetcd lists, no standby', cpu, CLIENTS, () => list(rawA, false));
    const withSb = await measure('pgetcd lists, later pages on the standby', cpu, CLIENTS, () => list(rawB, false));
    const ser = await measure('pgetcd serializable lists, every page on the standby', cpu, CLIENTS, () => list(rawB, true));
    const pagesPerList = Math.ceil(KEYS / LIMIT);
    console.log(`primary postgres CPU per list (${pagesPerList} pages): without standby ${(without.cpu['primary postgres']! * 1000 / without.ops).toFixed(2)} ms, `
      + `with the later pages on the standby ${(withSb.cpu['primary postgres']! * 1000 / withSb.ops).toFixed(2)} ms, serializable ${(ser.cpu['primary postgres']! * 1000 / ser.ops).toFixed(2)} ms`);

    // Puts, with replay lag sampled on the primary.
    const mon = cluster.primary.sql();
    const lagMs: number[] = [];
    const lagBytes: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [r] = await mon<Array<{ ms: number | null; bytes: string | null }>>`
          SELECT EXTRACT(EPOCH FROM replay_lag) * 1000 AS ms, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text AS bytes FROM pg_stat_replication`;
        if (r) {
          if (r.ms !== null) lagMs.push(Number(r.ms));
          if (r.bytes !== null) lagBytes.push(Number(r.bytes));
        }
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    const [w0] = await mon<Array<{ lsn: string }>>`SELECT pg_current_wal_lsn()::text AS lsn`;
    let seq = 0;
    const puts = await measure('pgetcd puts (32 writers)', cpu, WRITERS, () => rawA.call('KV', 'Put', { key: Buffer.from(`${PREFIX}${String(seq++ % KEYS).padStart(8, '0')}`), value: VALUE }));
    const [w1] = await mon<Array<{ bytes: string }>>`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), ${w0!.lsn}::pg_lsn)::text AS bytes`;
    sampling = false;
    await sampler;
    const [size] = await mon<Array<{ bytes: string }>>`SELECT pg_database_size('pgetcd')::text AS bytes`;
    await mon.end();
    console.log(`primary postgres CPU per put: ${(puts.cpu['primary postgres']! * 1e6 / puts.ops).toFixed(0)} us; WAL per put: ${(Number(w1!.bytes) / puts.ops).toFixed(0)} bytes `
      + `(1 KiB values; ${(Number(w1!.bytes) / SECONDS / 1024 / 1024).toFixed(2)} MiB/s)`);
    console.log(`standby replay lag under that load: replay_lag p50 ${pct(lagMs, 0.5).toFixed(1)} ms, p99 ${pct(lagMs, 0.99).toFixed(1)} ms, max ${Math.max(...lagMs).toFixed(1)} ms `
      + `(${lagMs.length} samples); replay distance p50 ${pct(lagBytes, 0.5)} bytes, max ${Math.max(...lagBytes)} bytes`);
    console.log(`database size after the run: ${(Number(size!.bytes) / 1024 / 1024).toFixed(1)} MiB`);
    rawA.close();
    rawB.close();
    for (const p of procs) await p.stop();
    procs.length = 0;
    await cluster.destroy();

    const etcdBin = findEtcd();
    if (!etcdBin) {
      console.log('etcd not on PATH: no comparison');
      return;
    }
    const etcd = await startEtcd(etcdBin, false, () => undefined);
    try {
      const raw = rawClients(etcd.endpoints[0]!);
      await load(raw);
      const ecpu = (): Cpu => ({ etcd: etcd.cpu().server });
      for (let i = 0; i < 3; i++) await list(raw, false);
      const el = await measure('etcd lists', ecpu, CLIENTS, () => list(raw, false));
      const es = await measure('etcd serializable lists', ecpu, CLIENTS, () => list(raw, true));
      seq = 0;
      const ep = await measure('etcd puts (32 writers)', ecpu, WRITERS, () => raw.call('KV', 'Put', { key: Buffer.from(`${PREFIX}${String(seq++ % KEYS).padStart(8, '0')}`), value: VALUE }));
      raw.close();
      console.log(`ratios pgetcd/etcd: lists/s ${(without.perSec / el.perSec).toFixed(2)} (no standby), ${(withSb.perSec / el.perSec).toFixed(2)} (standby); `
        + `serializable lists/s ${(ser.perSec / es.perSec).toFixed(2)}; puts/s ${(puts.perSec / ep.perSec).toFixed(2)}`);
    } finally {
      await etcd.stop();
    }
  } finally {
    for (const p of procs) await p.stop();
    await cluster.destroy().catch(() => undefined);
  }
  console.log(`uptime after: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

await main();
