import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { MALLOC_TUNABLES } from '../src/alloc.ts';
import { EmbeddedPostgres } from '../src/db/embedded.ts';
import { targetFromUrl, targetToUrl, type PgTarget } from '../src/db/target.ts';
import { createLogger } from '../src/log.ts';
import { DbStats } from './dbstats.ts';
import { PATHS, Pool } from './grpc.ts';
import { rangeRequest } from './pb.ts';
import { ioOf, pidsWithCmdline, rssMiB, treeCpuSeconds, treePssMiB, type IoReading } from './procstat.ts';
import type { TargetKind } from './workload.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Loopback ports reserved for benchmarks. */
/** PGETCD_BENCH_PORT_OFFSET shifts every port, for a bench beside another one (or a leftover server). */
const OFFSET = Number(process.env.PGETCD_BENCH_PORT_OFFSET ?? 0);
export const PORTS = {
  pgetcd: [23894 + OFFSET, 23895 + OFFSET], pgetcdMetrics: [23994 + OFFSET, 23995 + OFFSET],
  etcdClient: 23794 + OFFSET, etcdPeer: 23804 + OFFSET, embeddedPg: 5499 + OFFSET,
};

export interface CpuReading {
  /** The pgetcd node process(es) or etcd. */
  server: number;
  /** PostgreSQL (postmaster and every backend), when it runs on this machine. */
  postgres: number | undefined;
}

export interface MemReading {
  serverRssMiB: number;
  serverPeakMiB: number;
  postgresPssMiB: number | undefined;
}

export interface RunningTarget {
  kind: TargetKind;
  version: string;
  endpoints: string[];
  db: DbStats | undefined;
  cpu(): CpuReading;
  /** System-call I/O of the pgetcd node process(es) or etcd. */
  io(): IoReading;
  memory(): MemReading;
  stop(): Promise<void>;
}

export interface PgetcdOptions {
  databaseUrl: string | undefined;
  instances: number;
  profileDir: string | undefined;
  pgss: boolean;
  keep: boolean;
  extraArgs: string[];
  note(msg: string): void;
}

interface Proc {
  child: ChildProcess;
  output(): string;
}

/** Spawns a process and resolves once `ready` appears in its output (stdout or stderr). */
/** pgetcd's environment as its launchers set it (bin/pgetcd.js, npm start, the image): see src/alloc.ts. */
export function serverEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GLIBC_TUNABLES: process.env.GLIBC_TUNABLES || MALLOC_TUNABLES };
}

async function spawnUntil(file: string, args: string[], ready: string | undefined, timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<Proc> {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const proc = { child, output: () => out };
  if (ready === undefined) return proc;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${path.basename(file)} did not start in ${timeoutMs / 1000}s:\n${out.slice(-3000)}`)); }, timeoutMs);
    const check = (): void => {
      if (out.includes(ready)) { clearTimeout(timer); child.stdout!.off('data', check); child.stderr!.off('data', check); resolve(); }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`${path.basename(file)} exited (${code ?? sig}) before it was ready:\n${out.slice(-3000)}`)); });
  });
  return proc;
}

async function stopProc(p: Proc, timeoutMs = 60_000): Promise<void> {
  const c = p.child;
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, 'exit');
  c.kill('SIGTERM');
  const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

function gitVersion(): string {
  try {
    const sha = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'migrations'], { encoding: 'utf8' }).trim();
    return `pgetcd ${sha}${dirty ? '+dirty' : ''}`;
  } catch {
    return 'pgetcd';
  }
}

/**
 * Initialises a fresh embedded cluster and preloads pg_stat_statements (a restart setting), so
 * that statements per request can be counted. pgetcd then starts on the same folder.
 */
async function prepareEmbedded(dataDir: string): Promise<void> {
  const pg = new EmbeddedPostgres({ dataDir, port: PORTS.embeddedPg, tcp: false, log: createLogger('warn') });
  const t = await pg.start();
  const sql = postgres({ host: t.host, port: t.port, user: t.user, database: t.database, max: 1, onnotice: () => undefined });
  try {
    await sql`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`;
    await sql`ALTER SYSTEM SET pg_stat_statements.max = 1000`;
  } finally {
    await sql.end({ timeout: 5 });
    await pg.stop();
  }
}

export async function startPgetcd(o: PgetcdOptions): Promise<RunningTarget> {
  let tmp: string | undefined;
  let dataDir: string | undefined;
  let target: PgTarget;
  if (o.databaseUrl) {
    target = targetFromUrl(o.databaseUrl);
  } else {
    tmp = fs.mkdtempSync('/tmp/pgetcd-bench-');
    fs.chmodSync(tmp, 0o755);
    dataDir = path.join(tmp, 'data');
    if (o.pgss) await prepareEmbedded(dataDir);
    target = new EmbeddedPostgres({ dataDir, port: PORTS.embeddedPg, tcp: false, log: createLogger('silent') }).target();
  }
  const procs: Proc[] = [];
  const endpoints: string[] = [];
  let postmaster: number[] = [];
  const stop = async (): Promise<void> => {
    for (const p of procs.reverse()) await stopProc(p);
    // A pgetcd that had to be killed leaves its embedded PostgreSQL running: fast shutdown.
    for (const pid of postmaster) {
      try { process.kill(pid, 'SIGINT'); } catch { /* gone */ }
    }
    for (let i = 0; i < 100 && postmaster.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    if (tmp && !o.keep) fs.rmSync(tmp, { recursive: true, force: true });
    else if (tmp) o.note(`kept ${tmp}`);
  };
  try {
    for (let i = 0; i < o.instances; i++) {
      const port = PORTS.pgetcd[i];
      if (port === undefined) throw new Error(`at most ${PORTS.pgetcd.length} pgetcd instances`);
      const db = i === 0 && dataDir
        ? ['--data-dir', dataDir, '--embedded-port', String(PORTS.embeddedPg)]
        : ['--endpoint', o.databaseUrl ?? targetToUrl(target)];
      const nodeArgs = [...(process.env.PGETCD_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
        ...(i === 0 && o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', o.profileDir] : [])];
      const args = [...nodeArgs, path.join(ROOT, 'bin', 'pgetcd.js'), ...db,
        '--listen-client-urls', `http://127.0.0.1:${port}`, '--listen-metrics-urls', `http://127.0.0.1:${PORTS.pgetcdMetrics[i]}`,
        '--name', `bench${i + 1}`, ...o.extraArgs];
      o.note(`starting pgetcd ${i + 1} on 127.0.0.1:${port}`);
      procs.push(await spawnUntil(process.execPath, args, 'serving etcd gRPC', 180_000, serverEnv()));
      endpoints.push(`127.0.0.1:${port}`);
    }
    if (dataDir) postmaster = pidsWithCmdline(path.join(dataDir, 'pg'));
    const db = new DbStats(target);
    await db.init();
    const nodePids = (): number[] => procs.map((p) => p.child.pid!).filter(alive);
    return {
      kind: 'pgetcd',
      version: gitVersion() + (o.instances > 1 ? ` x${o.instances}` : ''),
      endpoints,
      db,
      cpu: () => ({ server: treeCpuSeconds(nodePids(), postmaster), postgres: postmaster.length ? treeCpuSeconds(postmaster) : undefined }),
      io: () => ioOf(nodePids()),
      memory: () => {
        const m = nodePids().map(rssMiB);
        return {
          serverRssMiB: m.reduce((a, x) => a + x.rss, 0),
          serverPeakMiB: m.reduce((a, x) => a + x.peak, 0),
          postgresPssMiB: postmaster.length ? treePssMiB(postmaster) : undefined,
        };
      },
      stop: async () => {
        await db.close().catch(() => undefined);
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The etcd binary on PATH, if any. */
export function findEtcd(name = 'etcd'): string | undefined {
  if (name.includes('/')) return fs.existsSync(name) ? name : undefined;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const f = path.join(dir || '.', name);
    try {
      fs.accessSync(f, fs.constants.X_OK);
      if (fs.statSync(f).isFile()) return f;
    } catch {
      // not here
    }
  }
  return undefined;
}

export async function startEtcd(bin: string, keep: boolean, note: (m: string) => void): Promise<RunningTarget> {
  const tmp = fs.mkdtempSync('/tmp/pgetcd-bench-etcd-');
  const client = `http://127.0.0.1:${PORTS.etcdClient}`;
  const peer = `http://127.0.0.1:${PORTS.etcdPeer}`;
  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).split('\n')[0]!.replace('etcd Version:', 'etcd').trim();
  note(`starting ${version} on 127.0.0.1:${PORTS.etcdClient}`);
  const proc = await spawnUntil(bin, [
    '--name', 'bench', '--data-dir', path.join(tmp, 'data'),
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `bench=${peer}`, '--initial-cluster-state', 'new',
    '--quota-backend-bytes', String(8 * 1024 ** 3),
    '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'warn',
  ], undefined, 0);
  const stop = async (): Promise<void> => {
    await stopProc(proc);
    if (!keep) fs.rmSync(tmp, { recursive: true, force: true });
  };
  const endpoint = `127.0.0.1:${PORTS.etcdClient}`;
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.child.exitCode !== null) throw new Error(`etcd exited:\n${proc.output().slice(-3000)}`);
      // A fresh connection per attempt: one refused before etcd listens is dead for good.
      const pool = new Pool([endpoint], 1);
      try {
        await pool.ready(2000);
        await pool.conn(0).unary(PATHS.range, rangeRequest(Buffer.from('bench-ready')), 2000);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`etcd did not answer: ${(err as Error).message}\n${proc.output().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 200));
      } finally {
        pool.close();
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const pid = proc.child.pid!;
  return {
    kind: 'etcd',
    version,
    endpoints: [endpoint],
    db: undefined,
    cpu: () => ({ server: treeCpuSeconds([pid]), postgres: undefined }),
    io: () => ioOf([pid]),
    memory: () => { const m = rssMiB(pid); return { serverRssMiB: m.rss, serverPeakMiB: m.peak, postgresPssMiB: undefined }; },
    stop,
  };
}
