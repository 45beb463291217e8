import type { MemReading } from './targets.ts';
import { median } from './stats.ts';
import type { TargetKind } from './workload.ts';

export interface StatementFigure {
  query: string;
  callsPerRequest: number;
  callsPerSecond: number;
  meanUs: number;
}

/** Everything measured in one run of one workload against one server. */
export interface RunResult {
  workload: string;
  params: string;
  target: TargetKind;
  version: string;
  repeat: number;
  unit: string;
  requests: number;
  errors: number;
  errorSamples: string[];
  seconds: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number } | undefined;
  cpu: {
    /** pgetcd's node process(es), or etcd. */
    serverSeconds: number;
    postgresSeconds: number | undefined;
    /** This load generator (same machine, same cores). */
    generatorSeconds: number;
    /** Server + PostgreSQL CPU per request, microseconds. */
    perRequestUs: number | undefined;
  };
  memory: MemReading;
  /** System calls of the pgetcd node process(es) or etcd, per request (/proc/<pid>/io). */
  io: { writeCallsPerRequest: number; writeBytesPerRequest: number; readCallsPerRequest: number; readBytesPerRequest: number } | undefined;
  db: {
    /** pg_stat_database transactions per request (exact only after --settle). */
    xactsPerRequest: number;
    /** Transactions that were assigned an xid (wrote), per request: exact. */
    writeXactsPerRequest: number;
    walBytesPerRequest: number;
    /** pg_stat_statements executions per request (BEGIN/COMMIT via the extended protocol did not show up on PG 18). */
    statementsPerRequest: number | undefined;
    xactsPerSecond: number;
    statementsPerSecond: number | undefined;
    topStatements: StatementFigure[];
  } | undefined;
  extra: Record<string, number | string>;
}

type Getter = (r: RunResult) => number | string | undefined;

interface Row { label: string; get: Getter; digits: number; ratio: boolean }

const per = (r: RunResult, x: number | undefined): number | undefined => (x === undefined || r.requests === 0 ? undefined : x / r.requests);

const ROWS: Row[] = [
  { label: 'requests', get: (r) => r.requests, digits: 0, ratio: false },
  { label: 'errors', get: (r) => r.errors, digits: 0, ratio: false },
  { label: 'requests/s', get: (r) => r.requestsPerSecond, digits: 0, ratio: true },
  { label: 'latency p50 ms', get: (r) => r.latencyMs?.p50, digits: 3, ratio: true },
  { label: 'latency p90 ms', get: (r) => r.latencyMs?.p90, digits: 3, ratio: true },
  { label: 'latency p99 ms', get: (r) => r.latencyMs?.p99, digits: 3, ratio: true },
  { label: 'latency max ms', get: (r) => r.latencyMs?.max, digits: 3, ratio: true },
  { label: 'server CPU s (node|etcd)', get: (r) => r.cpu.serverSeconds, digits: 2, ratio: false },
  { label: 'server CPU s (postgres)', get: (r) => r.cpu.postgresSeconds, digits: 2, ratio: false },
  { label: 'server CPU s (total)', get: (r) => r.cpu.serverSeconds + (r.cpu.postgresSeconds ?? 0), digits: 2, ratio: true },
  { label: 'server CPU us/request', get: (r) => r.cpu.perRequestUs, digits: 1, ratio: true },
  { label: 'server cores busy', get: (r) => (r.seconds ? (r.cpu.serverSeconds + (r.cpu.postgresSeconds ?? 0)) / r.seconds : undefined), digits: 2, ratio: false },
  { label: 'generator CPU % of 1 core', get: (r) => (r.seconds ? (100 * r.cpu.generatorSeconds) / r.seconds : undefined), digits: 0, ratio: false },
  { label: 'RSS MiB (node|etcd)', get: (r) => r.memory.serverRssMiB, digits: 0, ratio: false },
  { label: 'peak RSS MiB (node|etcd)', get: (r) => r.memory.serverPeakMiB, digits: 0, ratio: false },
  { label: 'PSS MiB (postgres)', get: (r) => r.memory.postgresPssMiB, digits: 0, ratio: false },
  { label: 'server write syscalls/request', get: (r) => r.io?.writeCallsPerRequest, digits: 2, ratio: true },
  { label: 'server bytes written/request', get: (r) => r.io?.writeBytesPerRequest, digits: 0, ratio: true },
  { label: 'server read syscalls/request', get: (r) => r.io?.readCallsPerRequest, digits: 2, ratio: true },
  { label: 'db xacts/request', get: (r) => r.db?.xactsPerRequest, digits: 3, ratio: false },
  { label: 'db write xacts/request', get: (r) => r.db?.writeXactsPerRequest, digits: 3, ratio: false },
  { label: 'db statements/request', get: (r) => r.db?.statementsPerRequest, digits: 2, ratio: false },
  { label: 'WAL bytes/request', get: (r) => r.db?.walBytesPerRequest, digits: 0, ratio: false },
  { label: 'db xacts/s', get: (r) => r.db?.xactsPerSecond, digits: 1, ratio: false },
  { label: 'db statements/s', get: (r) => r.db?.statementsPerSecond, digits: 1, ratio: false },
];

function fmt(x: number | string | undefined, digits: number): string {
  if (x === undefined || (typeof x === 'number' && !Number.isFinite(x))) return '-';
  if (typeof x === 'string') return x;
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function digitsFor(x: number): number {
  if (Number.isInteger(x)) return 0;
  return Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 1 ? 2 : 3;
}

/** Median over repeats for numbers; the last value for strings. */
function combine(rs: RunResult[], get: Getter): number | string | undefined {
  const vals = rs.map(get).filter((v) => v !== undefined);
  if (vals.length === 0) return undefined;
  if (vals.every((v) => typeof v === 'number')) return median(vals as number[]);
  return vals[vals.length - 1];
}

/** The side-by-side table (medians over repeats) with the pgetcd/etcd ratio. */
export function formatTable(results: RunResult[]): string {
  const targets = (['pgetcd', 'pgetcd-metrics-off', 'etcd'] as const).filter((t) => results.some((r) => r.target === t));
  const by = new Map(targets.map((t) => [t, results.filter((r) => r.target === t)]));
  const first = results[0]!;
  const lines: string[] = [];
  const repeats = Math.max(...results.map((r) => r.repeat)) + 1;
  lines.push(`== ${first.workload}: ${first.params}`);
  lines.push(`   one request = ${first.unit}${repeats > 1 ? `; medians of ${repeats} runs each` : ''}`);
  for (const t of targets) lines.push(`   ${t}: ${by.get(t)![0]!.version}`);
  const ratios = ([['pgetcd', 'etcd', 'pgetcd/etcd'], ['pgetcd', 'pgetcd-metrics-off', 'metrics on/off']] as const)
    .filter(([a, b]) => by.has(a) && by.has(b));
  const header = ['', ...targets, ...ratios.map((r) => r[2])];
  const table: string[][] = [header];
  const extraKeys = [...new Set(results.flatMap((r) => Object.keys(r.extra)))];
  const rows: Row[] = [
    ...ROWS,
    ...extraKeys.map((k) => ({ label: k, get: (r: RunResult) => r.extra[k], digits: -1, ratio: false })),
  ];
  if (repeats > 1) rows.splice(3, 0, { label: 'requests/s (each run)', get: () => undefined, digits: 0, ratio: false });
  for (const row of rows) {
    const cells = targets.map((t) => {
      const rs = by.get(t)!;
      if (row.label === 'requests/s (each run)') return rs.map((r) => fmt(r.requestsPerSecond, 0)).join(' ');
      const v = combine(rs, row.get);
      return fmt(v, row.digits >= 0 ? row.digits : typeof v === 'number' ? digitsFor(v) : 0);
    });
    if (cells.every((c) => c === '-')) continue;
    for (const [x, y] of ratios) {
      const a = combine(by.get(x)!, row.get);
      const b = combine(by.get(y)!, row.get);
      cells.push(row.ratio && typeof a === 'number' && typeof b === 'number' && b !== 0 ? (a / b).toFixed(2) : '');
    }
    table.push([row.label, ...cells]);
  }
  const widths = header.map((_, i) => Math.max(...table.map((r) => (r[i] ?? '').length)));
  for (const r of table) {
    lines.push('   ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  }
  for (const r of results) {
    if (r.errors) lines.push(`   ${r.target} run ${r.repeat + 1}: ${r.errors} errors, e.g. ${r.errorSamples.join(' | ')}`);
  }
  const pg = by.get('pgetcd');
  const last = pg?.[pg.length - 1];
  if (last?.db?.topStatements.length) {
    const perReq = last.requests > 0 && Number.isFinite(last.requestsPerSecond);
    lines.push(`   pgetcd statements (pg_stat_statements, last run): ${perReq ? 'calls/request' : 'calls/s'}  mean us  query`);
    for (const s of last.db.topStatements) {
      lines.push(`   ${(perReq ? s.callsPerRequest : s.callsPerSecond).toFixed(3).padStart(10)}  ${s.meanUs.toFixed(1).padStart(8)}  ${s.query}`);
    }
  }
  return lines.join('\n');
}

export function oneLine(query: string, max = 110): string {
  const q = query.replace(/\s+/g, ' ').trim();
  return q.length > max ? q.slice(0, max - 1) + '…' : q;
}
