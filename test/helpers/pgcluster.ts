/**
 * Real PostgreSQL replication for failover and standby tests: Debian's server binaries
 * (/usr/lib/postgresql/<version>/bin) run a primary and hot standbys made with pg_basebackup,
 * on TCP ports of 127.0.0.1, as the `postgres` user when the tests run as root. Tests skip with
 * `pgClusterMissing()`'s reason where the package is not installed.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { freePort } from './server.ts';

const execFileP = promisify(execFile);

function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const versions = fs.readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = path.join(root, v, 'bin');
    if (['initdb', 'pg_ctl', 'pg_basebackup', 'postgres'].every((b) => fs.existsSync(path.join(bin, b)))) return bin;
  }
  return undefined;
}

const BIN = binDir();

/** Why replication tests cannot run here, or undefined. */
export function pgClusterMissing(): string | undefined {
  if (!BIN) return "Debian's postgresql server package is not installed (/usr/lib/postgresql/*/bin; apt-get install postgresql)";
  if (process.getuid?.() === 0) {
    try {
      fs.accessSync('/etc/passwd');
      const ok = fs.readFileSync('/etc/passwd', 'utf8').split('\n').some((l) => l.startsWith('postgres:'));
      if (!ok) return 'running as root and there is no postgres user to run PostgreSQL as';
    } catch {
      return 'cannot read /etc/passwd';
    }
  }
  return undefined;
}

interface RunAs { uid: number; gid: number }

async function runAs(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number((await execFileP('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await execFileP('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

function run(file: string, args: string[], who: RunAs | undefined, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANG: 'C' };
    delete env.PGDATA;
    const child = spawn(file, args, { env, ...(who ? { uid: who.uid, gid: who.gid } : {}), stdio: ['ignore', 'pipe', 'pipe'], cwd: '/tmp' });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      if (code === 0) resolve(out);
      else reject(new Error(`${path.basename(file)} ${args.join(' ')} failed (${code}): ${out.trim()}`));
    });
  });
}

export interface PgNode {
  name: string;
  port: number;
  dataDir: string;
  /** postgres://postgres@127.0.0.1:<port>/<db> */
  url(db?: string): string;
  start(): Promise<void>;
  /** SIGKILL the postmaster and every one of its children: a machine that died. */
  kill(): Promise<void>;
  stop(): Promise<void>;
  /**
   * pg_ctl promote; then, as a failover manager does when no standby is left to acknowledge,
   * synchronous_standby_names is cleared so commits do not wait for one forever.
   */
  promote(): Promise<void>;
  /** Stops (SIGSTOP) or resumes (SIGCONT) this primary's WAL senders: standbys stop receiving. */
  pauseWalSenders(paused: boolean): Promise<void>;
  sql(db?: string): postgres.Sql;
}

export interface PgCluster {
  primary: PgNode;
  standbys: PgNode[];
  /** A libpq multi-host URL over every node, target_session_attrs=read-write. */
  multiHostUrl(db: string): string;
  destroy(): Promise<void>;
}

export interface PgClusterOptions {
  standbys: number;
  /** Synchronous replication: commits wait until a standby has flushed them. */
  sync: boolean;
  /** Extra `-c name=value` settings for every node. */
  settings?: string[];
}

/** A primary and `standbys` streaming hot standbys, each on a free TCP port. */
export async function startPgCluster(opts: PgClusterOptions): Promise<PgCluster> {
  if (!BIN) throw new Error(pgClusterMissing());
  const who = await runAs();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-repl-'));
  fs.chmodSync(root, 0o755);
  if (who) fs.chownSync(root, who.uid, who.gid);
  const nodes: PgNode[] = [];
  const node = (name: string, port: number): PgNode => {
    const dataDir = path.join(root, name);
    const settings = [
      `-p ${port}`, "-c listen_addresses=127.0.0.1", `-c unix_socket_directories=${root}`,
      '-c wal_level=replica', '-c max_wal_senders=10', '-c hot_standby=on', '-c max_connections=300',
      '-c shared_buffers=64MB', '-c fsync=on', '-c synchronous_commit=on', '-c wal_receiver_status_interval=1s',
      '-c hot_standby_feedback=on', `-c cluster_name=${name}`,
      ...(opts.settings ?? []).map((s) => `-c ${s}`),
    ].join(' ');
    let pid = 0;
    const n: PgNode = {
      name, port, dataDir,
      url: (db = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${db}`,
      start: async () => {
        await run(path.join(BIN, 'pg_ctl'), ['start', '-D', dataDir, '-w', '-t', '60', '-l', path.join(root, `${name}.log`), '-o', settings], who);
        pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      },
      kill: async () => {
        if (!pid) return;
        const children = (await execFileP('ps', ['-o', 'pid=', '--ppid', String(pid)]).catch(() => ({ stdout: '' }))).stdout
          .split('\n').map((s) => Number(s.trim())).filter((x) => x > 0);
        for (const p of [pid, ...children]) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
        pid = 0;
        // Give the kernel a moment to close the sockets.
        await new Promise((r) => setTimeout(r, 100));
      },
      stop: async () => {
        if (!pid) return;
        await run(path.join(BIN, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w'], who).catch(() => undefined);
        pid = 0;
      },
      promote: async () => {
        await run(path.join(BIN, 'pg_ctl'), ['promote', '-D', dataDir, '-w', '-t', '60'], who);
        if (!opts.sync) return;
        const s = n.sql();
        try {
          await s`ALTER SYSTEM SET synchronous_standby_names = ''`;
          await s`SELECT pg_reload_conf()`;
        } finally {
          await s.end();
        }
      },
      pauseWalSenders: async (paused: boolean) => {
        const s = n.sql();
        try {
          const rows = await s<Array<{ pid: number }>>`SELECT pid FROM pg_stat_replication`;
          for (const r of rows) process.kill(r.pid, paused ? 'SIGSTOP' : 'SIGCONT');
        } finally {
          await s.end();
        }
      },
      sql: (db = 'postgres') => postgres(n.url(db), { max: 2, onnotice: () => undefined, connect_timeout: 5 }),
    };
    return n;
  };

  const primary = node('primary', await freePort());
  await run(path.join(BIN, 'initdb'), ['-D', primary.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-instructions'], who);
  // In the configuration file, not on the command line, so that ALTER SYSTEM can change it
  // after a promotion (pg_basebackup copies it to the standbys).
  if (opts.sync) fs.appendFileSync(path.join(primary.dataDir, 'postgresql.auto.conf'), "synchronous_standby_names = '*'\n");
  await primary.start();
  nodes.push(primary);
  const standbys: PgNode[] = [];
  for (let i = 1; i <= opts.standbys; i++) {
    const s = node(`standby${i}`, await freePort());
    await run(path.join(BIN, 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', s.dataDir, '-R', '-X', 'stream', '-c', 'fast'], who);
    // Name the walreceiver so pg_stat_replication shows which standby is which.
    fs.appendFileSync(path.join(s.dataDir, 'postgresql.auto.conf'), `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres application_name=${s.name}'\n`);
    await s.start();
    standbys.push(s);
    nodes.push(s);
  }
  // Wait until every standby streams (and, in sync mode, is a sync candidate).
  const check = primary.sql();
  try {
    for (let i = 0; i < 300; i++) {
      const [r] = await check<Array<{ n: number }>>`SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'`;
      if (r!.n >= opts.standbys) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  } finally {
    await check.end();
  }
  return {
    primary,
    standbys,
    multiHostUrl: (db) => `postgres://postgres@${nodes.map((x) => `127.0.0.1:${x.port}`).join(',')}/${db}?target_session_attrs=read-write`,
    destroy: async () => {
      for (const x of nodes) await x.stop();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
