/**
 * Failures around the KV service: Postgres backends killed mid-write, Postgres restarted and
 * crashed mid-write, garbage protobuf. Requests may fail only with UNAVAILABLE, nothing
 * acknowledged is lost, revisions stay gapless, and the server serves again afterwards.
 */
import { assertConsistent } from './helpers/consistency.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { EmbeddedPostgres } from '../src/db/embedded.ts';
import { targetToUrl } from '../src/db/target.ts';
import { createLogger } from '../src/log.ts';
import { startServer, type TestServer } from './helpers/server.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { sqlFor } from './helpers/db.ts';

const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A unary call with a deadline, so a hung request shows up as DEADLINE_EXCEEDED instead of a hung test. */
function call(raw: Raw, method: string, req: object, timeoutMs = 20_000): Promise<any> {
  const c = raw.KV as unknown as Record<string, (req: object, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: any) => void) => void>;
  return new Promise((resolve, reject) => c[method]!.call(c, req, { deadline: Date.now() + timeoutMs }, (e, r) => (e ? reject(e) : resolve(r))));
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Ack { key: string; value: string; rev: number }

/**
 * Writers that put fresh keys in a loop until stopped, recording every acknowledged write and
 * every error code; readers alongside. Any status other than UNAVAILABLE is a wrong answer.
 */
class Workload {
  readonly acks: Ack[] = [];
  readonly codes = new Map<string, number>();
  readonly unexpected: string[] = [];
  private stopped = false;
  private readonly done: Promise<void[]>;

  constructor(private readonly raw: Raw, prefix: string, writers = 8) {
    const loops = Array.from({ length: writers }, (_, w) => this.writer(`${prefix}/${w}`));
    loops.push(this.reader(prefix));
    this.done = Promise.all(loops);
  }

  private record(err: unknown): void {
    const e = err as grpc.ServiceError;
    const name = grpc.status[e.code] ?? String(e.code);
    this.codes.set(name, (this.codes.get(name) ?? 0) + 1);
    if (e.code !== grpc.status.UNAVAILABLE) this.unexpected.push(`${name}: ${e.details}`);
  }

  private async writer(prefix: string): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      const key = `${prefix}/${String(i).padStart(6, '0')}`;
      try {
        const r = await call(this.raw, 'Put', { key: B(key), value: B(`v${i}`) });
        this.acks.push({ key, value: `v${i}`, rev: Number(r.header.revision) });
      } catch (err) {
        this.record(err);
        await sleep(20);
      }
    }
  }

  private async reader(prefix: string): Promise<void> {
    while (!this.stopped) {
      try {
        const r = await call(this.raw, 'Range', { key: B(`${prefix}/`), range_end: B(`${prefix}0`), count_only: true });
        assert.ok(Number(r.count) <= Number(r.header.revision));
      } catch (err) {
        this.record(err);
      }
      await sleep(10);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

/** Every acknowledged write is there with its value and revision; revisions are gapless. */
async function verify(raw: Raw, databaseUrl: string, w: Workload, prefix: string): Promise<void> {
  assert.deepEqual(w.unexpected, [], 'only UNAVAILABLE may be returned');
  const revs = w.acks.map((a) => a.rev);
  assert.equal(new Set(revs).size, revs.length, 'acknowledged revisions are unique');
  const r = await call(raw, 'Range', { key: B(`${prefix}/`), range_end: B(`${prefix}0`) });
  const stored = new Map<string, any>(r.kvs.map((kv: any) => [kv.key.toString(), kv]));
  for (const a of w.acks) {
    const kv = stored.get(a.key);
    assert.ok(kv, `acknowledged ${a.key}@${a.rev} is there`);
    assert.equal(kv.value.toString(), a.value);
    assert.equal(Number(kv.mod_revision), a.rev);
  }
  const sql = sqlFor(databaseUrl);
  try {
    const [g] = await sql`SELECT count(*)::int AS n, count(DISTINCT mod_revision)::int AS d, max(mod_revision)::int AS top FROM kv_log`;
    const [m] = await sql`SELECT revision::int AS rev FROM meta`;
    assert.equal(g!.top, m!.rev, 'meta.revision is the newest log revision');
    assert.equal(g!.d, g!.top - 1, 'one revision per put, gapless from 2');
    assert.equal(g!.n, g!.d);
  } finally {
    await sql.end();
  }
  await assertConsistent(databaseUrl);
}

describe('Postgres backends terminated in the middle of writes', () => {
  let srv: TestServer;
  let raw: Raw;
  before(async () => {
    srv = await startServer();
    raw = rawClients(srv.endpoint);
  });
  after(async () => {
    raw?.close();
    await srv?.stop();
  });

  it('requests fail with UNAVAILABLE only, then work again, and nothing acknowledged is lost', async () => {
    const w = new Workload(raw, 'term');
    const sql = sqlFor(srv.databaseUrl);
    try {
      await waitFor('writes before the outage', () => w.acks.length >= 100);
      let killed = 0;
      for (let round = 0; round < 3; round++) {
        const rows = await sql`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()`;
        killed += rows.length;
        await sleep(150);
      }
      assert.ok(killed > 0, 'there were pgetcd backends to terminate');
      const resumedFrom = w.acks.length;
      await waitFor('writes after the outage', () => w.acks.length >= resumedFrom + 100);
    } finally {
      await sql.end();
      await w.stop();
    }
    await verify(raw, srv.databaseUrl, w, 'term');
  });
});

describe('Postgres restarted and crashed in the middle of writes', () => {
  // A private cluster: restarting the test run's shared one would break the test files that
  // run alongside this one.
  let pg: EmbeddedPostgres;
  let dir: string;
  let srv: TestServer;
  let raw: Raw;
  let databaseUrl: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgetcd-kv-restart-'));
    await fs.chmod(dir, 0o755);
    pg = new EmbeddedPostgres({ dataDir: path.join(dir, 'db'), port: 5432, tcp: false, log: createLogger('silent') });
    databaseUrl = targetToUrl(await pg.start());
    srv = await startServer({ databaseUrl });
    raw = rawClients(srv.endpoint);
  });
  after(async () => {
    raw?.close();
    await srv?.stop();
    await pg?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  for (const how of ['fast restart', 'crash (immediate stop) and start'] as const) {
    it(`${how}: UNAVAILABLE while it is down, then work again, nothing acknowledged lost`, async () => {
      const prefix = how.startsWith('fast') ? 'fast' : 'crash';
      const w = new Workload(raw, prefix);
      try {
        await waitFor('writes before the restart', () => w.acks.length >= 100);
        const before = w.codes.get('UNAVAILABLE') ?? 0;
        if (how === 'fast restart') await pg.stop();
        else await pg.crash();
        await waitFor('requests failing while Postgres is down', () => (w.codes.get('UNAVAILABLE') ?? 0) > before + 5, 10_000);
        await pg.restart();
        const resumedFrom = w.acks.length;
        await waitFor('writes after the restart', () => w.acks.length >= resumedFrom + 100);
      } finally {
        await w.stop();
      }
      await verify(raw, databaseUrl, w, prefix);
    });
  }
});

describe('malformed protobuf', () => {
  let srv: TestServer;
  let client: grpc.Client;
  let raw: Raw;
  before(async () => {
    srv = await startServer();
    client = new grpc.Client(srv.endpoint, grpc.credentials.createInsecure());
    raw = rawClients(srv.endpoint);
  });
  after(async () => {
    client?.close();
    raw?.close();
    await srv?.stop();
  });

  const garbage: Record<string, Buffer> = {
    'an unterminated varint': Buffer.from([0xff, 0xff, 0xff]),
    'a truncated length-delimited field': Buffer.from([0x0a, 0x10, 0x61]),
    'wire type 7': Buffer.from([0x0f]),
    'a varint longer than 10 bytes': Buffer.from([0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
    'a group start': Buffer.from([0x0b]),
    'field number 0': Buffer.from([0x00, 0x01]),
    'noise': Buffer.from(Array.from({ length: 1024 }, (_, i) => (i * 7919) & 0xff)),
  };

  it('answers garbage with INTERNAL, as etcd does, and keeps serving', async () => {
    for (const method of ['Range', 'Put', 'DeleteRange', 'Txn', 'Compact']) {
      for (const [name, bytes] of Object.entries(garbage)) {
        const err = await new Promise<grpc.ServiceError | null>((resolve) => {
          client.makeUnaryRequest(`/etcdserverpb.KV/${method}`, () => bytes, (b: Buffer) => b, {}, { deadline: Date.now() + 10_000 }, (e) => resolve(e));
        });
        assert.ok(err, `${method} with ${name} fails`);
        assert.equal(err.code, grpc.status.INTERNAL, `${method} with ${name}: ${grpc.status[err.code]} ${err.details}`);
      }
    }
    const p = await raw.call('KV', 'Put', { key: B('after'), value: B('ok') });
    assert.equal(p.header.revision, '2', 'no garbage was written');
    assert.equal((await raw.call('KV', 'Range', { key: B('after') })).kvs[0].value.toString(), 'ok');
  });
});
