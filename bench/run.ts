/**
 * `npm run bench -- <workload> [options]`: runs a workload against pgetcd (a child process on a
 * fresh embedded PostgreSQL, or on --database-url) and, when `etcd` is on PATH, against a fresh
 * etcd, then prints a side-by-side table. See bench/README.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from './grpc.ts';
import { Opts } from './options.ts';
import { formatTable, oneLine, type RunResult } from './report.ts';
import { selfCheck } from './selfcheck.ts';
import { findEtcd, PORTS, ROOT, startEtcd, startPgetcd, type RunningTarget } from './targets.ts';
import type { CommonOptions, TargetKind, Workload, WorkloadContext } from './workload.ts';
import { checkPerfWorkload } from './workloads/checkperf.ts';
import { leaseWorkload } from './workloads/lease.ts';
import { mixedWorkload } from './workloads/mixed.ts';
import { putWorkload } from './workloads/put.ts';
import { rangeWorkload } from './workloads/range.ts';
import { externalWorkload } from './workloads/external.ts';
import { idleWorkload } from './workloads/idle.ts';
import { txnWorkload } from './workloads/txn.ts';
import { summarize } from './profile-summary.ts';

const USAGE = `Usage: npm run bench -- <workload> [options]

Workloads: put, range, txn, mixed, lease, watch (bench/watch.ts), check-perf, idle, smoke

Load:     --clients N (1)  --conns N (1)  --total N | --seconds S  --warmup S (1)  --repeat N (1)
          --driver http2|grpc-js (http2)  --timeout S (per request; 60, 15 in smoke)
Keys:     --key-size N (32)  --val-size N (256)  --prefix P (/bench/<workload>/)
put:      --keys sequential|random  --key-space N
range:    --keys N (1)  --op get|list  --limit N  --rev N|-N|loaded  --updates N  --serializable
          --client node|go (go: lists with etcd's Go clientv3, bench/go/rangeclient)
txn:      --key-space N (1000)
mixed:    --read-ratio R (0.9)  --key-space N (10000)
lease:    --leases N (1000)  --ttl S (60)      (--clients = keep-alive streams)
check-perf: --load s|m|l|xl  --etcdctl PATH
Servers:  --only pgetcd|etcd  --etcd PATH  --database-url URL (or PGETCD_BENCH_DATABASE_URL)
          --instances 1|2  --pgetcd-arg ARG (repeatable, passed to pgetcd)  --profile DIR
          --no-pgss  --settle S (11; 0 in smoke)  --keep
          --compare-metrics (also runs pgetcd with --metrics off; column "metrics on/off")
          --save-metrics FILE (pgetcd's /metrics scraped after each run with metrics on; the last run's is kept)
Output:   --json FILE  --quiet  --max-time S (7200; 300 in smoke: then servers are stopped, exit 3)
smoke:    --skip a,b  (workload names to leave out)
`;

const OPTIONS = {
  'clients': { type: 'string' }, 'conns': { type: 'string' }, 'total': { type: 'string' }, 'seconds': { type: 'string' },
  'warmup': { type: 'string' }, 'repeat': { type: 'string' },
  'key-size': { type: 'string' }, 'val-size': { type: 'string' }, 'prefix': { type: 'string' },
  'keys': { type: 'string' }, 'key-space': { type: 'string' }, 'op': { type: 'string' }, 'limit': { type: 'string' },
  'rev': { type: 'string' }, 'client': { type: 'string' }, 'updates': { type: 'string' }, 'serializable': { type: 'boolean' },
  'read-ratio': { type: 'string' }, 'leases': { type: 'string' }, 'ttl': { type: 'string' },
  'load': { type: 'string' }, 'etcdctl': { type: 'string' },
  'only': { type: 'string' }, 'etcd': { type: 'string' }, 'database-url': { type: 'string' }, 'instances': { type: 'string' },
  'pgetcd-arg': { type: 'string', multiple: true }, 'profile': { type: 'string' }, 'no-pgss': { type: 'boolean' },
  'compare-metrics': { type: 'boolean' }, 'save-metrics': { type: 'string' },
  'settle': { type: 'string' }, 'keep': { type: 'boolean' }, 'json': { type: 'string' }, 'quiet': { type: 'boolean' },
  'skip': { type: 'string' }, 'driver': { type: 'string' }, 'max-time': { type: 'string' }, 'timeout': { type: 'string' }, 'url-authority': { type: 'boolean' }, 'help': { type: 'boolean', short: 'h' },
} as const;

type Values = Record<string, string | boolean | string[] | undefined>;

function commonFrom(o: Opts, smoke: boolean): CommonOptions {
  return {
    clients: o.int('clients', 1, 1),
    conns: o.int('conns', 1, 1),
    total: o.optInt('total'),
    seconds: o.has('seconds') ? o.num('seconds', 0) : undefined,
    warmup: o.num('warmup', smoke ? 0 : 1),
    driver: o.oneOf('driver', ['http2', 'grpc-js'] as const, 'http2'),
    timeoutMs: o.num('timeout', smoke ? 15 : 60) * 1000,
    smoke,
    urlAuthority: o.has('url-authority'),
  };
}

interface Planned { workload: Workload; common: CommonOptions }

/** Writes the first pgetcd instance's /metrics to `file` (a failed scrape is noted, not fatal). */
async function saveMetrics(file: string, note: (m: string) => void): Promise<void> {
  try {
    const res = await fetch(`http://127.0.0.1:${PORTS.pgetcdMetrics[0]}/metrics`);
    fs.writeFileSync(file, await res.text());
    note(`pgetcd's /metrics written to ${file}`);
  } catch (err) {
    note(`--save-metrics: scraping pgetcd failed: ${(err as Error).message}`);
  }
}

async function plan(name: string, v: Values, rawArgs: string[], smoke: boolean): Promise<Planned> {
  const o = new Opts(v as Record<string, string | boolean | undefined>);
  const common = commonFrom(o, smoke);
  switch (name) {
    case 'put': return { workload: putWorkload(o, common), common };
    case 'range': return { workload: rangeWorkload(o, common), common };
    case 'txn': return { workload: txnWorkload(o, common), common };
    case 'mixed': return { workload: mixedWorkload(o, common), common };
    case 'lease': return { workload: leaseWorkload(o, common), common };
    case 'check-perf': return { workload: checkPerfWorkload(o, common), common };
    case 'idle': return { workload: idleWorkload(o, common), common };
    case 'watch': return { workload: await watchWorkload(rawArgs, common), common };
    default: throw new Error(`unknown workload "${name}"\n\n${USAGE}`);
  }
}

/**
 * bench/watch.ts (written separately) plugs in through `createWorkload(args, common)`; a file
 * without that export is run as a program against the target instead.
 */
async function watchWorkload(args: string[], common: CommonOptions): Promise<Workload> {
  const file = path.join(ROOT, 'bench', 'watch.ts');
  if (!fs.existsSync(file)) throw new Error('the watch workload lives in bench/watch.ts, which does not exist yet');
  if (/export\s+(async\s+)?function\s+createWorkload\b|export\s+const\s+createWorkload\b/.test(fs.readFileSync(file, 'utf8'))) {
    const mod = (await import(pathToFileURL(file).href)) as { createWorkload: (a: string[], c: CommonOptions) => Workload | Promise<Workload> };
    return await mod.createWorkload(args, common);
  }
  return externalWorkload('watch', file, args);
}

/** The tiny workloads of `smoke`: a few seconds in all, every workload exercised. */
function smokePlan(): Array<[string, Record<string, string | boolean>, string[]?]> {
  const p = (s: string): string => `/bench/smoke/${s}/`;
  return [
    ['put', { 'clients': '4', 'conns': '2', 'total': '200', 'prefix': p('put') }],
    ['put', { 'clients': '4', 'conns': '2', 'total': '100', 'keys': 'random', 'key-space': '50', 'prefix': p('put-random') }],
    ['range', { 'clients': '2', 'total': '50', 'prefix': p('get') }],
    ['range', { 'keys': '1000', 'total': '5', 'prefix': p('list') }],
    ['range', { 'keys': '1000', 'limit': '100', 'clients': '2', 'total': '6', 'prefix': p('list-paged') }],
    ['range', { 'keys': '200', 'updates': '1', 'rev': 'loaded', 'limit': '50', 'total': '5', 'prefix': p('list-history') }],
    ['txn', { 'clients': '8', 'conns': '2', 'key-space': '20', 'total': '200', 'prefix': p('txn') }],
    ['mixed', { 'clients': '4', 'conns': '2', 'key-space': '100', 'total': '200', 'prefix': p('mixed') }],
    ['lease', { 'clients': '4', 'conns': '2', 'leases': '20', 'total': '200' }],
    ['idle', { 'seconds': '1' }],
    ...(fs.existsSync(path.join(ROOT, 'bench', 'watch.ts'))
      ? [['watch', {}, ['--watchers', '100', '--rate', '100', '--seconds', '1', '--samples', '20']] as [string, Record<string, string>, string[]]]
      : []),
  ];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function measure(p: Planned, t: RunningTarget, repeat: number, settle: number, note: (m: string) => void): Promise<RunResult> {
  const { workload: w, common } = p;
  const pool = new Pool(t.endpoints, w.conns ?? common.conns, common.driver, common.timeoutMs, common.urlAuthority);
  try {
    await pool.ready();
    const ctx: WorkloadContext = { target: t.kind, endpoints: t.endpoints, pool, common, note: (m) => note(`${t.kind}: ${m}`) };
    if (w.setup) await w.setup(ctx);
    if (common.warmup > 0) {
      note(`${t.kind}: warming up ${common.warmup}s`);
      await w.run(ctx, { warmup: true });
    }
    // Backends flush pg_stat_database counters at most once a second, and an idle one only
    // after 10 s: let the setup's and warm-up's counts land before the baseline.
    if (t.db && settle > 0 && (w.setup || common.warmup > 0)) await sleep(settle * 1000);
    const cpu0 = t.cpu();
    const io0 = t.io();
    const db0 = await t.db?.snapshot();
    await t.db?.resetStatements();
    const gen0 = process.cpuUsage();
    note(`${t.kind}: running ${w.name}`);
    const out = await w.run(ctx, { warmup: false });
    const gen = process.cpuUsage(gen0);
    const cpu1 = t.cpu();
    const io1 = t.io();
    const memory = t.memory();
    if (t.db && settle > 0) await sleep(settle * 1000);
    const db1 = await t.db?.snapshot();
    const statements = (await t.db?.statements()) ?? [];
    if (w.teardown) await w.teardown(ctx);
    const serverSeconds = cpu1.server - cpu0.server;
    const postgresSeconds = cpu1.postgres !== undefined && cpu0.postgres !== undefined ? cpu1.postgres - cpu0.postgres : undefined;
    const lat = out.latency?.summary();
    // A program-run workload has no request count: no rates, nothing per request.
    const n = out.noRates ? 0 : out.requests;
    const totalCalls = statements.reduce((a, s) => a + s.calls, 0);
    const per = (x: number): number => (n ? x / n : NaN);
    return {
      workload: w.name,
      params: w.params,
      target: t.kind,
      version: t.version,
      repeat,
      unit: out.unit,
      requests: n,
      errors: out.errors,
      errorSamples: out.errorSamples,
      seconds: out.seconds,
      requestsPerSecond: out.noRates ? NaN : out.seconds > 0 ? n / out.seconds : 0,
      latencyMs: lat && { p50: lat.p50Us / 1000, p90: lat.p90Us / 1000, p99: lat.p99Us / 1000, max: lat.maxUs / 1000, mean: lat.meanUs / 1000 },
      cpu: {
        serverSeconds,
        postgresSeconds,
        generatorSeconds: (gen.user + gen.system) / 1e6,
        perRequestUs: n ? ((serverSeconds + (postgresSeconds ?? 0)) * 1e6) / n : undefined,
      },
      memory,
      io: n ? {
        writeCallsPerRequest: (io1.syscw - io0.syscw) / n,
        writeBytesPerRequest: (io1.wchar - io0.wchar) / n,
        readCallsPerRequest: (io1.syscr - io0.syscr) / n,
        readBytesPerRequest: (io1.rchar - io0.rchar) / n,
      } : undefined,
      db: db0 && db1 ? {
        xactsPerRequest: per(db1.xacts - db0.xacts),
        // The snapshot query itself takes no xid; nothing else of ours writes.
        writeXactsPerRequest: per(db1.nextXid - db0.nextXid),
        walBytesPerRequest: per(db1.walBytes - db0.walBytes),
        statementsPerRequest: t.db?.pgss ? per(totalCalls) : undefined,
        xactsPerSecond: (db1.xacts - db0.xacts) / out.seconds,
        statementsPerSecond: t.db?.pgss ? totalCalls / out.seconds : undefined,
        topStatements: statements.slice(0, 8).map((s) => ({
          query: oneLine(s.query), callsPerRequest: per(s.calls), callsPerSecond: s.calls / out.seconds, meanUs: s.calls ? (s.totalMs * 1000) / s.calls : 0,
        })),
      } : undefined,
      extra: out.extra,
    };
  } finally {
    pool.close();
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const name = argv[0];
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  const rest = argv.slice(1);
  // The watch workload takes options of its own: parse ours leniently and hand it the rest.
  const { values } = parseArgs({ args: rest, options: OPTIONS, strict: name !== 'watch', allowPositionals: name === 'watch' });
  const v = values as Values;
  if (v.help) { process.stdout.write(USAGE); return 0; }
  const o = new Opts(v as Record<string, string | boolean | undefined>);
  const smoke = name === 'smoke';
  const quiet = o.bool('quiet');
  const note = (m: string): void => { if (!quiet) process.stderr.write(`[bench] ${m}\n`); };

  selfCheck();

  const only = o.has('only') ? o.oneOf('only', ['pgetcd', 'etcd'] as const, 'pgetcd') : undefined;
  const etcdBin = findEtcd(o.str('etcd', 'etcd'));
  const kinds: TargetKind[] = [];
  if (only !== 'etcd') kinds.push('pgetcd');
  // The same pgetcd with --metrics off right after it, on fresh servers: what the metrics cost.
  if (only !== 'etcd' && o.bool('compare-metrics')) kinds.push('pgetcd-metrics-off');
  if (only !== 'pgetcd') {
    if (etcdBin) kinds.push('etcd');
    else if (only === 'etcd') throw new Error('--only etcd: no etcd binary on PATH');
    else note('no etcd on PATH: running pgetcd only');
  }
  const databaseUrl = o.str('database-url', process.env.PGETCD_BENCH_DATABASE_URL ?? '') || undefined;
  const instances = o.int('instances', 1, 1);
  const settle = o.num('settle', smoke ? 0 : 11);
  const repeats = smoke ? 1 : o.int('repeat', 1, 1);
  const profileDir = o.has('profile') ? path.resolve(o.str('profile', '')) : undefined;
  if (profileDir) fs.mkdirSync(profileDir, { recursive: true });
  const profilesBefore = new Set(profileDir ? fs.readdirSync(profileDir) : []);

  const start = async (kind: TargetKind): Promise<RunningTarget> => {
    if (kind === 'etcd') return await startEtcd(etcdBin!, o.bool('keep'), note);
    const off = kind === 'pgetcd-metrics-off';
    const t = await startPgetcd({
      databaseUrl, instances, profileDir, pgss: !o.bool('no-pgss'), keep: o.bool('keep'),
      extraArgs: [...((v['pgetcd-arg'] as string[] | undefined) ?? []), ...(off ? ['--metrics', 'off'] : [])], note,
    });
    return off ? { ...t, kind } : t;
  };

  let planned: Array<{ label: string; p: Planned }>;
  if (smoke) {
    const skip = new Set(o.str('skip', '').split(',').filter(Boolean));
    planned = [];
    for (const [w, args, raw] of smokePlan()) {
      if (skip.has(w)) continue;
      planned.push({ label: w, p: await plan(w, { ...args, driver: o.str('driver', 'http2'), ...(o.has('timeout') ? { timeout: o.str('timeout', '') } : {}) }, raw ?? [], true) });
    }
  } else {
    planned = [{ label: name, p: await plan(name, v, rest, false) }];
  }

  const results: RunResult[] = [];
  const failures: string[] = [];
  // Never leave servers behind: stop the running one on a signal or when --max-time runs out.
  let running: RunningTarget | undefined;
  const abort = (why: string): void => {
    process.stderr.write(`bench: ${why}: stopping\n`);
    const t = running;
    running = undefined;
    void (t ? t.stop() : Promise.resolve()).finally(() => process.exit(3));
  };
  process.once('SIGINT', () => abort('SIGINT'));
  process.once('SIGTERM', () => abort('SIGTERM'));
  const maxTime = o.num('max-time', smoke ? 300 : 7200);
  setTimeout(() => abort(`--max-time ${maxTime}s exceeded`), maxTime * 1000).unref();
  for (let rep = 0; rep < repeats; rep++) {
    for (const kind of kinds) {
      const t = await start(kind);
      running = t;
      try {
        for (const { label, p } of planned) {
          try {
            const r = await measure(p, t, rep, settle, note);
            results.push(r);
            if (r.errors > 0 || (r.requests === 0 && !Number.isNaN(r.requestsPerSecond))) failures.push(`${kind} ${label} (${p.workload.params}): ${r.requests} requests, ${r.errors} errors ${r.errorSamples.join(' | ')}`);
          } catch (err) {
            failures.push(`${kind} ${label} (${p.workload.params}): ${(err as Error).message}`);
            note(`${kind}: ${label} failed: ${(err as Error).message}`);
          }
        }
        if (t.kind === 'pgetcd' && o.has('save-metrics')) await saveMetrics(o.str('save-metrics', ''), note);
      } finally {
        if (running === t) {
          running = undefined;
          await t.stop();
        }
      }
    }
  }

  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    const k = `${r.workload}\0${r.params}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const text = [...groups.values()].map(formatTable).join('\n\n');
  process.stdout.write(text + '\n');
  if (profileDir) {
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread; others are
    // workers (tsx's module loader), listed only.
    for (const f of fs.readdirSync(profileDir).filter((x) => x.endsWith('.cpuprofile') && !profilesBefore.has(x))) {
      const file = path.join(profileDir, f);
      if (/\.\d+\.0\.\d+\.cpuprofile$/.test(f)) process.stdout.write(`\npgetcd CPU profile (main thread): ${summarize(file, 25)}\n`);
      else process.stdout.write(`\nworker thread profile (not summarised): ${file}\n`);
    }
  }
  const jsonFile = o.str('json', '');
  if (jsonFile) {
    fs.writeFileSync(jsonFile, JSON.stringify({ argv, date: new Date().toISOString(), node: process.version, results }, null, 2));
    note(`results written to ${jsonFile}`);
  }
  if (failures.length) {
    process.stderr.write(`\nFAILED:\n${failures.map((f) => `  ${f}`).join('\n')}\n`);
    return 1;
  }
  if (smoke) process.stdout.write(`\nsmoke: ${results.length} workload runs passed\n`);
  return 0;
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).message ?? String(err)}\n`);
  process.exit(2);
});
