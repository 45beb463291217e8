/**
 * Go clientv3 (etcd 3.4's client, the one kube-apiserver uses) against pgetcd: builds
 * test/go-compat (our own Go program) offline against Debian's etcd sources and runs its checks.
 * Skips when `go` or the sources are missing (apt-get install golang-go golang-etcd-server-dev).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { freePort, startServer } from './helpers/server.ts';

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

test('Go clientv3 works unchanged against pgetcd', { timeout: 360_000 }, async (t) => {
  const why = missing();
  if (why) {
    t.skip(why);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-go-compat-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, 'go-compat');
  const build = await run('go', ['build', '-o', bin, '.'], { cwd: SRC, env: goEnv(), timeoutMs: 240_000 });
  assert.equal(build.code, 0, `go build failed (${build.ms} ms):\n${lastLines(build.stdout + build.stderr, 40)}`);
  t.diagnostic(`go build: ${build.ms} ms`);

  // Advertise the real port: cluster.sync_endpoints dials the URLs MemberList reports.
  const url = `http://127.0.0.1:${await freePort()}`;
  const srv = await startServer({ listenClientUrls: [url], advertiseClientUrls: [url], progressNotifyIntervalMs: PROGRESS_INTERVAL_MS });
  t.after(() => srv.stop());

  const res = await run(bin, ['-progress-interval', `${PROGRESS_INTERVAL_MS}ms`, srv.endpoint], { env: goEnv(), timeoutMs: 150_000 });
  t.diagnostic(`go-compat: ${res.ms} ms`);
  const lines = res.stdout.split('\n');
  const checks = lines.map((l) => /^(PASS|FAIL|SKIP) ([\w.]+)(?: \([\d.]+s\))?(?:: (.*))?$/.exec(l)).filter((m) => m !== null);
  for (const [, verdict, name, detail] of checks) {
    await t.test(name!, (st) => {
      if (verdict === 'SKIP') st.skip(detail);
      else assert.equal(verdict, 'PASS', detail);
    });
  }
  const failed = checks.filter((m) => m[1] === 'FAIL').map((m) => m[0]);
  assert.ok(checks.length > 0, `go-compat printed no checks (exit ${res.code}):\n${lastLines(res.stdout + res.stderr, 40)}`);
  assert.ok(/^summary pass=\d+ fail=0 /m.test(res.stdout), `go-compat did not finish cleanly:\n${failed.join('\n')}\n${lastLines(res.stdout, 3)}\n${lastLines(res.stderr, 10)}`);
  assert.equal(res.code, 0, `go-compat exited ${res.code ?? res.signal}:\n${failed.join('\n')}`);
});
