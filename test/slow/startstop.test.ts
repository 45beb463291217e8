import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EmbeddedPostgres } from '../../src/db/embedded.ts';
import { createLogger } from '../../src/log.ts';
import { freePort, startServerProcess } from '../helpers/server.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { rawClients } from '../helpers/raw.ts';
import { once } from 'node:events';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

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

async function waitFor(p: Proc, text: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!p.output().includes(text)) {
    if (p.child.exitCode !== null) throw new Error(`exited before "${text}": ${p.output()}`);
    if (Date.now() > deadline) throw new Error(`no "${text}" within ${ms} ms: ${p.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function logLines(out: string): Array<Record<string, unknown>> {
  return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('start and stop with real processes (minutes under load)', () => {
  it('a database that is not up yet is retried with a log line per attempt, then pgetcd serves', async () => {
    const dbPort = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-late-db-'));
    fs.chmodSync(dir, 0o755);
    const pg = new EmbeddedPostgres({ dataDir: path.join(dir, 'db'), port: dbPort, tcp: true, log: createLogger('silent') });
    const p = run(['--endpoint', `postgres://postgres@127.0.0.1:${dbPort}/postgres`, '--listen-client-urls', `http://127.0.0.1:${await freePort()}`]);
    try {
      await waitFor(p, 'PostgreSQL not reachable yet', 20_000);
      await pg.start();
      await waitFor(p, 'serving etcd gRPC', 60_000);
      const retries = logLines(p.output()).filter((l) => l.msg === 'PostgreSQL not reachable yet; retrying');
      assert.ok(retries.length >= 1);
      assert.equal(retries[0]!.code, 'ECONNREFUSED');
      assert.ok(logLines(p.output()).some((l) => l.msg === 'PostgreSQL is up'));
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
      await pg.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writers through a SIGTERM: every acknowledged write is there after a restart', async () => {
    const url = await createTestDatabase();
    const port = await freePort();
    const s = await startServerProcess(url, port);
    const acked = new Map<string, string>();
    const writers = 8;
    const raw = rawClients(s.endpoint);
    let stop = false;
    const loops = Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}/${i}`;
        try {
          await raw.call('KV', 'Put', { key: Buffer.from(key), value: Buffer.from(`v${i}`) });
          acked.set(key, `v${i}`);
        } catch {
          return;
        }
      }
    });
    while (acked.size < 200) await new Promise((r) => setTimeout(r, 10));
    s.child.kill('SIGTERM');
    const [code] = (await once(s.child, 'exit')) as [number | null];
    stop = true;
    await Promise.all(loops);
    raw.close();
    assert.equal(code, 0);
    const again = await startServerProcess(url, port);
    const check = rawClients(again.endpoint);
    try {
      const r = await check.call<{ kvs: Array<{ key: Buffer; value: Buffer }> }>('KV', 'Range', { key: Buffer.from('w'), range_end: Buffer.from('x') });
      const have = new Map(r.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
      for (const [k, v] of acked) assert.equal(have.get(k), v, `acknowledged ${k}`);
    } finally {
      check.close();
      await again.stop();
    }
  });

  it('a second SIGTERM exits at once', async () => {
    const url = await createTestDatabase();
    const s = await startServerProcess(url, await freePort());
    let out = '';
    s.child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    s.child.kill('SIGTERM');
    s.child.kill('SIGTERM');
    const [code] = (await once(s.child, 'exit')) as [number | null];
    // Either the second signal arrived during the shutdown (exit 1, said so) or the shutdown had
    // already finished (exit 0): never a hang.
    if (code === 1) assert.match(out, /second signal: exiting now/);
    else assert.equal(code, 0);
  });
});
