/**
 * Go clientv3 (etcd 3.4's client, the one kube-apiserver uses) against pgetcd: builds
 * test/go-compat (our own Go program) offline against Debian's etcd sources and runs its checks.
 * Skips when `go` or the sources are missing (apt-get install golang-go golang-etcd-server-dev).
 * The Go side and its offline build recipe: test/go-compat/README.md.
 */
import { assertConsistent } from './helpers/consistency.ts';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it, type TestContext } from 'node:test';
import { freePort, startServer, type TestServer } from './helpers/server.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SRC = path.join(HERE, 'go-compat');
/** GOPATH holding go.etcd.io/etcd and its dependencies (Debian's golang-*-dev packages). */
const GOPATH = process.env.PGETCD_GO_COMPAT_GOPATH ?? '/usr/share/gocode';
const PROGRESS_INTERVAL_MS = 1000;

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** Why the check cannot run here, or undefined when it can. */
function missing(): string | undefined {
  const v = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) return 'go is not on PATH (apt-get install golang-go)';
  for (const pkg of ['go.etcd.io/etcd/clientv3/concurrency', 'google.golang.org/grpc']) {
    if (!fs.existsSync(path.join(GOPATH, 'src', pkg))) {
      return `${pkg} not found under ${GOPATH}/src (apt-get install golang-etcd-server-dev)`;
    }
  }
  return undefined;
}

/** GOPATH mode, offline: every import resolves under GOPATH, no module proxy. */
function goEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GO111MODULE: 'off',
    GOPATH,
    GOFLAGS: '',
    GOPROXY: 'off',
    CGO_ENABLED: '0',
    GOCACHE: process.env.GOCACHE ?? path.join(os.tmpdir(), 'pgetcd-go-build-cache'),
  };
}

const lastLines = (s: string, n: number): string => s.trimEnd().split('\n').slice(-n).join('\n');

/** Runs go-compat against `endpoints` and reports each of its checks as a subtest. */
async function runChecks(t: TestContext, bin: string, endpoints: string[], only?: string): Promise<void> {
  const args = ['-progress-interval', `${PROGRESS_INTERVAL_MS}ms`, ...(only ? ['-only', only] : []), endpoints.join(',')];
  const res = await run(bin, args, { env: goEnv(), timeoutMs: 150_000 });
  t.diagnostic(`go-compat ${args.join(' ')}: ${res.ms} ms`);
  const checks = res.stdout.split('\n')
    .map((l) => /^(PASS|FAIL|SKIP) ([\w.]+)(?: \([\d.]+s\))?(?:: (.*))?$/.exec(l))
    .filter((m) => m !== null);
  for (const [, verdict, name, detail] of checks) {
    await t.test(name!, (st) => {
      if (verdict === 'SKIP') st.skip(detail);
      else assert.equal(verdict, 'PASS', detail);
    });
  }
  const failed = checks.filter((m) => m[1] === 'FAIL').map((m) => m[0]);
  assert.ok(checks.length > 0, `go-compat printed no checks (exit ${res.code ?? res.signal}):\n${lastLines(res.stdout + res.stderr, 40)}`);
  assert.ok(/^summary pass=\d+ fail=0 /m.test(res.stdout),
    `go-compat did not finish cleanly (exit ${res.code ?? res.signal}):\n${failed.join('\n')}\n${lastLines(res.stdout, 3)}\n${lastLines(res.stderr, 10)}`);
  assert.equal(res.code, 0, `go-compat exited ${res.code ?? res.signal}:\n${failed.join('\n')}`);
}

/** A pgetcd instance that advertises its real port (cluster.sync_endpoints dials what MemberList reports). */
async function instance(opts: { databaseUrl?: string; name?: string } = {}): Promise<TestServer> {
  const url = `http://127.0.0.1:${await freePort()}`;
  return await startServer({ ...opts, listenClientUrls: [url], advertiseClientUrls: [url], progressNotifyIntervalMs: PROGRESS_INTERVAL_MS });
}

const why = missing();

describe('Go clientv3 (etcd 3.4) works unchanged against pgetcd', { skip: why ?? false, timeout: 420_000 }, () => {
  let dir: string;
  let bin: string;
  let srv: TestServer;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-go-compat-'));
    bin = path.join(dir, 'go-compat');
    const build = await run('go', ['build', '-o', bin, '.'], { cwd: SRC, env: goEnv(), timeoutMs: 240_000 });
    assert.equal(build.code, 0, `go build failed (${build.ms} ms):\n${lastLines(build.stdout + build.stderr, 40)}`);
    srv = await instance();
  }, { timeout: 300_000 });
  after(async () => {
    await srv?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('every check on one instance', { timeout: 180_000 }, async (t) => {
    await runChecks(t, bin, [srv.endpoint]);
  });

  // kube-apiserver's --etcd-servers with two pgetcd instances on one database: clientv3
  // balances requests over both, so watches, leases and locks span instances.
  it('two instances on one database, the client balancing over both', { timeout: 180_000 }, async (t) => {
    const second = await instance({ databaseUrl: srv.databaseUrl, name: 'second' });
    t.after(() => second.stop());
    await runChecks(t, bin, [srv.endpoint, second.endpoint], 'kv,txn,lease,watch,concurrency');
    await assertConsistent(srv.databaseUrl);
  });
});
