import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
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
