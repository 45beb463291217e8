/**
 * The performance issue's table in one command: runs each row's workload through bench/run.ts
 * (pgetcd and etcd side by side, fresh servers per run) and prints pgetcd/etcd per row as a
 * Markdown table with the commit and the command of each row.
 *
 *   node --import tsx bench/table.ts [--seconds S] [--repeat N] [--rows a,b] [--pgetcd-arg X]...
 *
 * Rows it cannot run say so (the Go clientv3 rows need a Go load generator, the watch rows are
 * bench/watch.ts's own measurements).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { RunResult } from './report.ts';
import { ROOT } from './targets.ts';

interface Row {
  id: string;
  label: string;
  target: string;
  args: string[];
  /** The figure compared, from one run's result; and whether higher is better. */
  figure: (r: RunResult) => number | undefined;
  unit: string;
  higherIsBetter: boolean;
}

const rps = (r: RunResult): number => r.requestsPerSecond;

const ROWS: Row[] = [
  { id: 'list', label: 'list of 10,000 keys (linearizable, 256 B values), 4 clients', target: '≥ 1.0× etcd lists/s',
    args: ['range', '--keys', '10000', '--clients', '4'], figure: rps, unit: 'lists/s', higherIsBetter: true },
  { id: 'golist', label: 'the same list from one Go clientv3 client (kube-apiserver\'s client), mean time per list', target: '≤ 1.0× etcd\'s time',
    args: ['range', '--keys', '10000', '--client', 'go', '--clients', '1'], figure: (r) => r.latencyMs?.mean, unit: 'ms', higherIsBetter: false },
  { id: 'gopage', label: 'paginated list (limit 500, 10,000 keys) from one Go clientv3 client, mean time per list', target: '≤ 1.0× etcd\'s time',
    args: ['range', '--keys', '10000', '--limit', '500', '--client', 'go', '--clients', '1'], figure: (r) => r.latencyMs?.mean, unit: 'ms', higherIsBetter: false },
  { id: 'page', label: 'paginated list, limit 500, over 10,000 keys, 1 client', target: '≥ 1.0×',
    args: ['range', '--keys', '10000', '--limit', '500', '--clients', '1'], figure: rps, unit: 'lists/s', higherIsBetter: true },
  { id: 'cas', label: 'Kubernetes CAS txn, 100 clients', target: '≥ 1.0×',
    args: ['txn', '--clients', '100', '--conns', '10'], figure: rps, unit: 'txn/s', higherIsBetter: true },
  { id: 'put100', label: 'put, 100 clients over 10 connections', target: '≥ 0.8× (stretch 1.0×)',
    args: ['put', '--clients', '100', '--conns', '10'], figure: rps, unit: 'puts/s', higherIsBetter: true },
  { id: 'put1', label: 'put, 1 client, average latency', target: '≤ 1.5×',
    args: ['put', '--clients', '1'], figure: (r) => r.latencyMs?.mean, unit: 'ms', higherIsBetter: false },
  { id: 'perfl', label: '`etcdctl check perf --load=l`', target: 'more writes/s than etcd',
    args: ['check-perf', '--load', 'l'], figure: (r) => num(r.extra['etcdctl writes/s']), unit: 'writes/s', higherIsBetter: true },
  { id: 'perfm', label: 'RSS during `check perf --load=m` (peak)', target: '≤ 1.5× etcd',
    args: ['check-perf', '--load', 'm'], figure: (r) => r.memory.serverPeakMiB, unit: 'MiB', higherIsBetter: false },
];

const NOT_HERE = [
  ['watch put→event p99, 10,000-write burst from 50 writers, 2 instances', '≤ 2× etcd', 'not run by this mode: `node --import tsx bench/watch.ts --keys 100000`, row "burst: put->event p99", column "pgetcd A->B"'],
  ['100,000 keys + 10,000 watchers', '≤ 300 MiB', 'not run by this mode: the same command, row "server RSS, 100000 keys + watchers"'],
];

function num(v: number | string | undefined): number | undefined {
  return typeof v === 'number' ? v : undefined;
}

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1]! + s[m]!) / 2;
}

function fmt(x: number | undefined): string {
  if (x === undefined) return '—';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '8' }, repeat: { type: 'string', default: '1' }, rows: { type: 'string' },
      'pgetcd-arg': { type: 'string', multiple: true }, help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log('usage: node --import tsx bench/table.ts [--seconds S] [--repeat N] [--rows ' + ROWS.map((r) => r.id).join(',') + '] [--pgetcd-arg X]...');
    return;
  }
  const only = values.rows ? new Set(values.rows.split(',')) : undefined;
  const extra = (values['pgetcd-arg'] ?? []).flatMap((a) => ['--pgetcd-arg', a]);
  const commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']).toString().trim();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-table-'));
  const lines: string[] = [];
  for (const row of ROWS) {
    if (only && !only.has(row.id)) continue;
    const json = path.join(dir, `${row.id}.json`);
    const timed = row.args[0] === 'check-perf' ? [] : ['--seconds', values.seconds!];
    const args = [...row.args, ...timed, '--repeat', values.repeat!, ...extra, '--json', json, '--quiet'];
    process.stderr.write(`table: npm run bench -- ${args.join(' ')}\n`);
    const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'run.ts'), ...args], { stdio: ['ignore', 'ignore', 'inherit'], cwd: ROOT });
    let results: RunResult[] = [];
    try {
      results = (JSON.parse(fs.readFileSync(json, 'utf8')) as { results: RunResult[] }).results;
    } catch {
      lines.push(`| ${row.label} | failed (exit ${res.status}) | | | ${row.target} | \`${args.join(' ')}\` |`);
      continue;
    }
    const of = (t: string): number | undefined =>
      median(results.filter((r) => r.target === t).map(row.figure).filter((x): x is number => x !== undefined));
    const p = of('pgetcd');
    const e = of('etcd');
    const ratio = p !== undefined && e !== undefined && e !== 0 ? p / e : undefined;
    const cpu = (t: string): number | undefined => median(results.filter((r) => r.target === t).map((r) => r.cpu.perRequestUs).filter((x): x is number => x !== undefined));
    const cp = cpu('pgetcd');
    const ce = cpu('etcd');
    const cpuRatio = cp !== undefined && ce !== undefined && ce > 0 ? `${fmt(cp / ce)}×` : '—';
    lines.push(`| ${row.label} | ${fmt(ratio)}× | ${fmt(p)} vs ${fmt(e)} ${row.unit} | ${cpuRatio} | ${row.target} | \`${args.slice(0, -3).join(' ')}\` |`);
  }
  console.log(`pgetcd ${commit} against etcd, ${new Date().toISOString()}, ${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(1)}`);
  console.log('| workload | pgetcd/etcd | pgetcd vs etcd | server CPU per request (pgetcd/etcd) | target | `npm run bench --` |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const l of lines) console.log(l);
  for (const [label, target, why] of NOT_HERE) console.log(`| ${label} | ${why} | | | ${target} | |`);
  fs.rmSync(dir, { recursive: true, force: true });
}

main();
