import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from './helpers/server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Proc {
  child: ChildProcess;
  output(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

function run(args: string[]): Proc {
  // No metrics listener: concurrent test files would share port 2381.
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'pgetcd.js'), '--listen-metrics-urls', '', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, stderr: () => err, exited };
}

function logLines(out: string): Array<Record<string, unknown>> {
  return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('start', () => {
  it('as root, a --data-dir under a folder the PostgreSQL user cannot enter is one line naming --data-dir, exit 2', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-private-'));
    fs.chmodSync(dir, 0o700);
    try {
      const p = run(['--data-dir', path.join(dir, 'data'), '--listen-client-urls', `http://127.0.0.1:${await freePort()}`]);
      assert.equal(await p.exited, 2);
      assert.match(p.stderr(), /^pgetcd: --data-dir: .* is not reachable by the user PostgreSQL runs as .* is mode 700; .*\n$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // Needs root and a kernel that lets it mount tmpfs (skipped otherwise, e.g. in an unprivileged container).
  const canMount = ((): boolean => {
    if (process.getuid?.() !== 0) return false;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-mnt-'));
    const ok = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]).status === 0;
    if (ok) spawnSync('umount', [dir]);
    fs.rmSync(dir, { recursive: true, force: true });
    return ok;
  })();

  it('a --data-dir on a read-only or full filesystem is one line naming --data-dir, exit 2', { skip: canMount ? false : 'needs root and tmpfs mounts' }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-mnt-'));
    const sh = (cmd: string, args: string[]): void => { const r = spawnSync(cmd, args); assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`); };
    try {
      // Read-only: the data dir exists, nothing can be written in it.
      sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
      fs.mkdirSync(path.join(dir, 'data'));
      sh('mount', ['-o', 'remount,ro', dir]);
      const ro = run(['--data-dir', path.join(dir, 'data'), '--listen-client-urls', `http://127.0.0.1:${await freePort()}`]);
      assert.equal(await ro.exited, 2);
      assert.match(ro.stderr(), /^pgetcd: --data-dir: cannot write in .*\/data: read-only filesystem; use a folder on a writable filesystem\n$/);
      sh('umount', [dir]);
      // Full (1 MB): too little for a new cluster.
      sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
      const full = run(['--data-dir', path.join(dir, 'data'), '--listen-client-urls', `http://127.0.0.1:${await freePort()}`]);
      assert.equal(await full.exited, 2);
      assert.match(full.stderr(), /^pgetcd: --data-dir: .*\/data has [\d.]+ MB free; a new PostgreSQL cluster needs at least 64 MB\n$/);
    } finally {
      spawnSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives up after --datastore-wait-timeout with one line saying so', async () => {
    const p = run(['--endpoint', `postgres://postgres@127.0.0.1:${await freePort()}/postgres`, '--datastore-wait-timeout', '1500ms',
      '--listen-client-urls', `http://127.0.0.1:${await freePort()}`]);
    assert.equal(await p.exited, 1);
    const lines = logLines(p.output());
    assert.ok(lines.filter((l) => l.msg === 'PostgreSQL not reachable yet; retrying').length >= 2, p.output());
    const fatal = lines.find((l) => l.level === 60);
    assert.match(JSON.stringify(fatal), /is not reachable: .*gave up after \d+ attempts/);
  });

});
