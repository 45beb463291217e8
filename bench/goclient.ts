import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './targets.ts';

/**
 * Load generators written with etcd's Go client (clientv3, kube-apiserver's client), built from
 * bench/go/<name> in GOPATH mode against Debian's golang-etcd-server-dev (offline, as
 * test/go-compat does). `go` and the packages come from `.ci/run`'s apt step.
 */
const GOPATH = process.env.PGETCD_GO_COMPAT_GOPATH ?? '/usr/share/gocode';

function goEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env, GO111MODULE: 'off', GOPATH, GOFLAGS: '', GOPROXY: 'off', CGO_ENABLED: '0',
    GOCACHE: process.env.GOCACHE ?? path.join(os.tmpdir(), 'pgetcd-go-build-cache'),
  };
}

/** Builds bench/go/<name> (once per process) and returns the binary's path; throws with the reason it cannot. */
const built = new Map<string, string>();
export function buildGoProgram(name: string): string {
  const had = built.get(name);
  if (had) return had;
  const v = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) throw new Error('go is not on PATH (apt-get install golang-go golang-etcd-server-dev)');
  if (!fs.existsSync(path.join(GOPATH, 'src', 'go.etcd.io', 'etcd', 'clientv3'))) {
    throw new Error(`go.etcd.io/etcd/clientv3 not found under ${GOPATH}/src (apt-get install golang-etcd-server-dev)`);
  }
  const bin = path.join(os.tmpdir(), `pgetcd-bench-${name}`);
  const r = spawnSync('go', ['build', '-o', bin, '.'], { cwd: path.join(ROOT, 'bench', 'go', name), env: goEnv(), encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`go build of bench/go/${name} failed:\n${(r.stdout + r.stderr).trim().split('\n').slice(-20).join('\n')}`);
  built.set(name, bin);
  return bin;
}

/** Runs a Go load generator; resolves with the JSON line it prints last. */
export function runGoProgram<T>(bin: string, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0) reject(new Error(`${path.basename(bin)} exited ${code}: ${last}`));
      else {
        try {
          resolve(JSON.parse(last) as T);
        } catch {
          reject(new Error(`${path.basename(bin)} printed no result: ${last}`));
        }
      }
    });
  });
}
