/**
 * The head cache (src/store/headcache.ts) answers Ranges from memory exactly as the SQL reader
 * does. Two instances share one database: A with the cache, B without (--cache-max-bytes 0,
 * every Range from SQL). A starts after B has written (cold start: the cache loads from
 * kv_current), then both write (A's cache follows its own commits and B's through the feed).
 * Seeded random ranges (keys with any bytes, sort targets and orders, limits, revision filters,
 * keys_only, count_only, past revisions) must give byte-identical answers on both.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startServer, type TestServer } from './helpers/server.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { rng, seedFromEnv } from './helpers/seed.ts';
import { waitFor } from './helpers/wait.ts';
import { assertConsistent } from './helpers/consistency.ts';
import { RangeResponseEncoder } from '../src/server/rangecodec.ts';
import { setReadFaultForTests } from '../src/watch/feed.ts';
import type { PackedRangeResponse, RangeRequest } from '../src/store/types.ts';

const B = (s: string): Buffer => Buffer.from(s);
const ALPHABET = [0x00, 0x01, 0x2f, 0x61, 0x62, 0x7f, 0x80, 0xfe, 0xff];

function randomKey(r: () => number): Buffer {
  const n = 1 + Math.floor(r() * 4);
  return Buffer.from(Array.from({ length: n }, () => ALPHABET[Math.floor(r() * ALPHABET.length)]!));
}

function range(over: Partial<RangeRequest>): RangeRequest {
  return {
    key: B(''), range_end: B(''), limit: 0, revision: 0, sort_order: 0, sort_target: 0, serializable: false,
    keys_only: false, count_only: false, min_mod_revision: 0, max_mod_revision: 0, min_create_revision: 0, max_create_revision: 0,
    ...over,
  };
}

function randomRange(r: () => number, head: number): RangeRequest {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const a = randomKey(r);
  const end = pick([B(''), Buffer.from([0]), randomKey(r), Buffer.concat([a, Buffer.from([0xff])])]);
  const rev = (): number => 1 + Math.floor(r() * head);
  return range({
    key: r() < 0.1 ? Buffer.from([0]) : a,
    range_end: end,
    limit: pick([0, 0, 1, 2, 5, 50]),
    revision: r() < 0.3 ? pick([head, head - 1, rev()]) : 0,
    sort_order: pick([0, 0, 1, 2]),
    sort_target: pick([0, 0, 1, 2, 3, 4]),
    serializable: r() < 0.2,
    keys_only: r() < 0.15,
    count_only: r() < 0.1,
    min_mod_revision: r() < 0.1 ? rev() : 0,
    max_mod_revision: r() < 0.1 ? rev() : 0,
    min_create_revision: r() < 0.1 ? rev() : 0,
    max_create_revision: r() < 0.1 ? rev() : 0,
  });
}

/** The RangeResponse a client receives for the answer (the cache and SQL keep key-values differently). */
const encoder = new RangeResponseEncoder('1', '2', 3);
function kvBytes(p: PackedRangeResponse): Buffer {
  return encoder.encodePacked(p);
}

async function answer(s: TestServer, req: RangeRequest): Promise<PackedRangeResponse | string> {
  try {
    return await s.app.store.rangePacked(req);
  } catch (e) {
    return (e as Error).message;
  }
}

function same(a: PackedRangeResponse | string, b: PackedRangeResponse | string, what: string): void {
  if (typeof a === 'string' || typeof b === 'string') {
    assert.equal(a, b, what);
    return;
  }
  assert.deepEqual(
    { revision: a.header.revision, count: a.count, more: a.more, kvs: a.kvs, bytes: kvBytes(a).toString('hex') },
    { revision: b.header.revision, count: b.count, more: b.more, kvs: b.kvs, bytes: kvBytes(b).toString('hex') },
    what,
  );
}

describe('head cache: Ranges from memory', () => {
  let a: TestServer;
  let b: TestServer;
  let rawA: Raw;
  let rawB: Raw;
  const seed = seedFromEnv();
  const r = rng(seed);
  let lease = '0';

  async function writeSome(raw: Raw, n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const key = randomKey(r);
      const x = r();
      if (x < 0.15) await raw.call('KV', 'DeleteRange', { key, range_end: r() < 0.3 ? Buffer.concat([key, Buffer.from([0x80])]) : B('') });
      else if (x < 0.25) await raw.call('KV', 'Txn', { success: [{ request_put: { key, value: B('t') } }, { request_put: { key: Buffer.concat([key, B('x')]), value: B('u') } }] });
      else {
        const value = Buffer.from(Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256)));
        await raw.call('KV', 'Put', { key, value, lease: r() < 0.2 ? lease : '0' });
      }
    }
  }

  before(async () => {
    console.log(`kv.headcache: seed ${seed} (PGETCD_TEST_SEED=${seed} to rerun)`);
    b = await startServer({ cacheMaxBytes: 0 });
    rawB = rawClients(b.endpoint);
    const g = await rawB.call('Lease', 'LeaseGrant', { TTL: 600 });
    lease = String(g.ID);
    await writeSome(rawB, 150);
    a = await startServer({ databaseUrl: b.databaseUrl, cacheMaxBytes: 64 * 1024 * 1024 });
    rawA = rawClients(a.endpoint);
    await waitFor('the head cache to load', async () => (a.app.store.cacheStats()!.revision >= 0 ? true : undefined));
  });
  after(async () => {
    setReadFaultForTests(undefined);
    try {
      await assertConsistent(a.databaseUrl);
    } finally {
      rawA.close();
      rawB.close();
      await a.stop();
      await b.stop();
    }
  });

  it('answers seeded random ranges byte for byte as SQL does, loaded cold and fed by both instances', async () => {
    for (let round = 0; round < 4; round++) {
      await writeSome(round % 2 === 0 ? rawA : rawB, 60);
      // A linearizable read on A sees B's writes: the read index waits for the feed.
      const head = Number((await rawB.call('KV', 'Range', { key: B('\0'), count_only: true })).header.revision);
      const hits0 = a.app.store.cacheStats()!.hits;
      for (let i = 0; i < 150; i++) {
        const req = randomRange(r, head);
        const fromCache = await answer(a, req);
        const fromSql = await answer(b, req);
        same(fromCache, fromSql, `seed ${seed} round ${round} request ${i}: ${JSON.stringify({ ...req, key: req.key.toString('hex'), range_end: req.range_end.toString('hex') })}`);
      }
      // The comparison is worth something only if the cache answered most of it.
      assert.ok(a.app.store.cacheStats()!.hits - hits0 > 75, `cache hits ${a.app.store.cacheStats()!.hits - hits0} of 150`);
    }
  });

  it("a linearizable get on one instance sees every write acknowledged by the other", async () => {
    for (let i = 0; i < 100; i++) {
      const key = B(`/lin/${i % 7}`);
      const p = await rawB.call('KV', 'Put', { key, value: B(`v${i}`) });
      const g = await rawA.call('KV', 'Range', { key });
      assert.equal(g.kvs[0]?.value.toString(), `v${i}`, `read ${i} on A after B's put at ${p.header.revision}`);
      assert.ok(Number(g.header.revision) >= Number(p.header.revision));
      if (i % 10 === 9) {
        await rawB.call('KV', 'DeleteRange', { key });
        assert.equal((await rawA.call('KV', 'Range', { key })).kvs.length, 0, `delete ${i} seen on A`);
      }
    }
  });

  it('a cache that is behind answers from SQL, and right', async () => {
    // A's feed stalls on its next read: B's write cannot reach A's cache, so A's read must not
    // wait for it longer than its bound and must read PostgreSQL.
    let release!: () => void;
    const stalled = new Promise<void>((res) => { release = res; });
    setReadFaultForTests(async (from) => {
      setReadFaultForTests(undefined);
      await stalled;
      return from;
    });
    try {
      const misses0 = a.app.store.cacheStats()!.misses;
      await rawB.call('KV', 'Put', { key: B('/behind'), value: B('new') });
      const g = await rawA.call('KV', 'Range', { key: B('/behind') });
      assert.equal(g.kvs[0]?.value.toString(), 'new');
      assert.ok(a.app.store.cacheStats()!.misses > misses0, 'the read did not come from the cache');
    } finally {
      release();
    }
    await waitFor('the cache to catch up', async () => {
      const g = await rawA.call('KV', 'Range', { key: B('/behind') });
      return g.kvs[0]?.value.toString() === 'new' ? true : undefined;
    });
  });

  it('a cache over --cache-max-bytes is dropped and ranges read PostgreSQL', async () => {
    const c = await startServer({ databaseUrl: b.databaseUrl, cacheMaxBytes: 2000 });
    const rawC = rawClients(c.endpoint);
    try {
      await waitFor('the cache load to give up', async () => (c.app.store.cacheStats()!.drops > 0 ? true : undefined));
      const req = range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
      same(await answer(c, req), await answer(b, req), 'whole keyspace');
      assert.equal(c.app.store.cacheStats()!.hits, 0);
      assert.equal(c.app.store.cacheStats()!.revision, -1);
    } finally {
      rawC.close();
      await c.stop();
    }
  });
});
