/**
 * Writes evaluated on the in-memory key index and committed by one pgetcd_write call, and own
 * commits delivered to watchers without reading kv_log back: results must be exactly those of
 * the reading path, on one instance and when another instance writes the same keys, leases or
 * revokes behind the index's back.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { after, before, describe, it } from 'node:test';
import { startPair, startServer, type ServerPair, type TestServer } from './helpers/server.ts';
import { expectGrpcError, rawClients, type Raw } from './helpers/raw.ts';
import { waitFor } from './helpers/wait.ts';
import { RawWatch } from './helpers/watch.ts';
import type { WatchComponent } from '../src/watch/index.ts';

const B = (s: string): Buffer => Buffer.from(s);

const indexReady = (s: TestServer): Promise<true> =>
  waitFor('the key index to load', async () => (s.app.store.indexStats().revision >= 0 ? true : undefined));

async function get(raw: Raw, key: string): Promise<{ rev: number; kv: any }> {
  const r = await raw.call('KV', 'Range', { key: B(key) });
  return { rev: Number(r.header.revision), kv: r.kvs[0] };
}

function cas(key: string, modRev: number, value: string): object {
  return {
    compare: [{ key: B(key), target: 'MOD', result: 'EQUAL', mod_revision: modRev }],
    success: [{ request_put: { key: B(key), value: B(value) } }],
    failure: [{ request_range: { key: B(key) } }],
  };
}

describe('Writes from the key index (one instance)', () => {
  let srv: TestServer;
  let raw: Raw;
  before(async () => {
    srv = await startServer();
    raw = rawClients(srv.endpoint);
    await indexReady(srv);
  });
  after(async () => {
    raw.close();
    await srv.stop();
  });

  it('puts, deletes and Kubernetes-style CAS txns give etcd results, most in one round trip', async () => {
    const stats = srv.app.store.writer.stats;
    // The writer's two connections open on their first batches (which read).
    await raw.call('KV', 'Put', { key: B('/s/warm'), value: B('1') });
    await raw.call('KV', 'Put', { key: B('/s/warm'), value: B('2') });
    const spec0 = stats.speculative;
    const p1 = await raw.call('KV', 'Put', { key: B('/s/a'), value: B('1') });
    const rev1 = Number(p1.header.revision);
    const p2 = await raw.call('KV', 'Put', { key: B('/s/a'), value: B('2') });
    assert.equal(Number(p2.header.revision), rev1 + 1);
    let a = await get(raw, '/s/a');
    assert.equal(a.kv.value.toString(), '2');
    assert.equal(Number(a.kv.version), 2);
    assert.equal(Number(a.kv.create_revision), rev1);
    assert.equal(Number(a.kv.mod_revision), rev1 + 1);

    // A CAS that holds writes without reading; one that fails answers with the stored value.
    const ok = await raw.call('KV', 'Txn', cas('/s/a', rev1 + 1, '3'));
    assert.equal(ok.succeeded, true);
    assert.equal(Number(ok.header.revision), rev1 + 2);
    const before = stats.speculative;
    const stale = await raw.call('KV', 'Txn', cas('/s/a', rev1 + 1, 'x'));
    // It writes nothing, so it takes the reading path; in a batch with writes it reads the
    // value in the same call (see the concurrent test below).
    assert.equal(stats.speculative, before);
    assert.equal(stale.succeeded, false);
    assert.equal(Number(stale.header.revision), rev1 + 2);
    const kv = stale.responses[0].response_range.kvs[0];
    assert.equal(kv.value.toString(), '3');
    assert.equal(Number(kv.version), 3);

    // prev_kv needs the old value: the answer must still carry it.
    const p4 = await raw.call('KV', 'Put', { key: B('/s/a'), value: B('4'), prev_kv: true });
    assert.equal(p4.prev_kv.value.toString(), '3');
    assert.equal(Number(p4.prev_kv.mod_revision), rev1 + 2);

    // Deleting a missing key writes nothing and keeps the revision.
    const d0 = await raw.call('KV', 'DeleteRange', { key: B('/s/missing') });
    assert.equal(d0.deleted, '0');
    assert.equal(Number(d0.header.revision), rev1 + 3);
    const d1 = await raw.call('KV', 'DeleteRange', { key: B('/s/a') });
    assert.equal(d1.deleted, '1');
    assert.equal(Number(d1.header.revision), rev1 + 4);
    a = await get(raw, '/s/a');
    assert.equal(a.kv, undefined);
    assert.equal(a.rev, rev1 + 4);

    // Recreated after the delete: a new life, version 1.
    const p5 = await raw.call('KV', 'Put', { key: B('/s/a'), value: B('5') });
    a = await get(raw, '/s/a');
    assert.equal(Number(a.kv.version), 1);
    assert.equal(Number(a.kv.create_revision), Number(p5.header.revision));

    // ignore_lease / ignore_value on a missing key still fail as etcd does.
    await expectGrpcError(raw.call('KV', 'Put', { key: B('/s/nokey'), ignore_lease: true }), grpc.status.INVALID_ARGUMENT, 'etcdserver: key not found');
    assert.ok(stats.speculative - spec0 >= 5, `speculative batches: ${stats.speculative - spec0}`);
  });

  it('a put with a lease revoked without keys (no new revision) gets "requested lease not found"', async () => {
    const g = await raw.call('Lease', 'LeaseGrant', { TTL: 60 });
    await raw.call('KV', 'Put', { key: B('/s/leased'), value: B('v'), lease: g.ID });
    await raw.call('KV', 'DeleteRange', { key: B('/s/leased') });
    await raw.call('Lease', 'LeaseRevoke', { ID: g.ID });
    await expectGrpcError(raw.call('KV', 'Put', { key: B('/s/leased'), value: B('w'), lease: g.ID }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
  });

  it('own commits reach prev_kv watchers without a read, with the right prev_kv', async () => {
    const w = new RawWatch(raw);
    try {
      const feed = (srv.app.components[0] as WatchComponent).stats().feed;
      const local0 = feed.localDeliveries;
      await w.watch({ key: B('/s/w'), prev_kv: true });
      await raw.call('KV', 'Put', { key: B('/s/w'), value: B('one') });
      await raw.call('KV', 'Put', { key: B('/s/w'), value: B('two') });
      await raw.call('KV', 'DeleteRange', { key: B('/s/w') });
      const evs = [];
      while (evs.length < 3) evs.push(...(await w.next()).events);
      assert.deepEqual(evs.map((e) => [e.type, e.kv.value.toString(), e.prev_kv?.value.toString() ?? null]), [
        [0, 'one', null], [0, 'two', 'one'], [1, '', 'two'],
      ]);
      assert.equal(Number(evs[2]!.prev_kv!.version), 2);
      // A commit is handed to watchers locally only when the feed is not reading at that
      // moment (a read started by the watch's creation or by a late notification takes it
      // instead), so on a loaded machine the first few may all go through a read. Keep
      // writing, one at a time, checking every event, until one is delivered locally.
      const stats = () => (srv.app.components[0] as WatchComponent).stats().feed.localDeliveries;
      let prev = '';
      for (let i = 0; i < 20 && stats() <= local0; i++) {
        const v = `r${i}`;
        await raw.call('KV', 'Put', { key: B('/s/w'), value: B(v) });
        const got = [];
        while (got.length < 1) got.push(...(await w.next()).events);
        assert.equal(got.length, 1);
        assert.equal(got[0].kv.value.toString(), v);
        assert.equal(got[0].prev_kv?.value.toString() ?? null, i === 0 ? null : prev);
        prev = v;
      }
      assert.ok(stats() > local0, 'delivered locally');
    } finally {
      w.close();
    }
  });
});

describe('--no-key-index', () => {
  it('every batch reads first, with the same results', async () => {
    const srv = await startServer({ keyIndex: false });
    const raw = rawClients(srv.endpoint);
    try {
      const r1 = Number((await raw.call('KV', 'Put', { key: B('/n/a'), value: B('1') })).header.revision);
      for (let i = 0; i < 3; i++) await raw.call('KV', 'Put', { key: B('/n/a'), value: B(String(i)) });
      const ok = await raw.call('KV', 'Txn', cas('/n/a', r1 + 3, 'x'));
      assert.equal(ok.succeeded, true);
      const { kv } = await get(raw, '/n/a');
      assert.equal(Number(kv.version), 5);
      assert.equal(Number(kv.create_revision), r1);
      assert.equal(srv.app.store.writer.stats.speculative, 0);
      assert.equal(srv.app.store.indexStats().revision, -1);
    } finally {
      raw.close();
      await srv.stop();
    }
  });
});

describe('Writes from the key index (two instances on one database)', () => {
  let pair: ServerPair;
  let a: TestServer;
  let rawA: Raw;
  let rawB: Raw;
  before(async () => {
    pair = await startPair();
    ({ a, rawA, rawB } = pair);
    await indexReady(pair.a);
    await indexReady(pair.b);
  });
  after(() => pair.stop());

  it('alternating writes of one key through both: every revision and version exact', async () => {
    let rev = Number((await rawA.call('KV', 'Put', { key: B('/t/k'), value: B('0') })).header.revision);
    const create = rev;
    for (let i = 1; i <= 60; i++) {
      const raw = i % 2 ? rawB : rawA;
      // Half the writes are CAS on the revision the other instance just wrote.
      const r = i % 3 === 0
        ? await raw.call('KV', 'Txn', cas('/t/k', rev, String(i)))
        : await raw.call('KV', 'Put', { key: B('/t/k'), value: B(String(i)) });
      if (i % 3 === 0) assert.equal(r.succeeded, true, `CAS ${i} on revision ${rev}`);
      assert.equal(Number(r.header.revision), rev + 1, `write ${i}`);
      rev++;
    }
    for (const raw of [rawA, rawB]) {
      const { kv } = await get(raw, '/t/k');
      assert.equal(kv.value.toString(), '60');
      assert.equal(Number(kv.version), 61);
      assert.equal(Number(kv.create_revision), create);
      assert.equal(Number(kv.mod_revision), rev);
    }
  });

  it('a batch of CAS updates where some fail still answers each failed one with the stored object', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `/v/${i}`);
    const revs = new Map<string, number>();
    for (const k of keys) revs.set(k, Number((await rawA.call('KV', 'Put', { key: B(k), value: B(`${k}=0`) })).header.revision));
    const spec0 = a.app.store.writer.stats.speculative;
    // Concurrent: one batch. Every other CAS names a stale revision.
    const rs = await Promise.all(keys.map((k, i) => rawA.call('KV', 'Txn', cas(k, i % 2 ? revs.get(k)! - 1 : revs.get(k)!, `${k}=1`))));
    rs.forEach((r, i) => {
      assert.equal(r.succeeded, i % 2 === 0, keys[i]);
      if (i % 2) {
        const kv = r.responses[0].response_range.kvs[0];
        assert.equal(kv.value.toString(), `${keys[i]}=0`);
        assert.equal(Number(kv.mod_revision), revs.get(keys[i]!));
      }
    });
    assert.ok(a.app.store.writer.stats.speculative > spec0);
  });

  it('concurrent writers on both instances: gapless revisions, exact versions', async () => {
    const revs: number[] = [];
    await Promise.all(Array.from({ length: 20 }, async (_, c) => {
      const raw = c % 2 ? rawB : rawA;
      for (let i = 0; i < 15; i++) {
        const r = await raw.call('KV', 'Put', { key: B(`/u/${i % 3}`), value: B(`${c}/${i}`) });
        revs.push(Number(r.header.revision));
      }
    }));
    revs.sort((x, y) => x - y);
    assert.equal(new Set(revs).size, revs.length);
    assert.equal(revs[revs.length - 1]! - revs[0]!, revs.length - 1);
    let versions = 0;
    for (let i = 0; i < 3; i++) versions += Number((await get(rawA, `/u/${i}`)).kv.version);
    assert.equal(versions, 300);
  });

  it('a lease revoked through the other instance: a put with it is refused', async () => {
    const g = await rawA.call('Lease', 'LeaseGrant', { TTL: 60 });
    await rawA.call('KV', 'Put', { key: B('/t/l'), value: B('v'), lease: g.ID });
    await rawA.call('KV', 'DeleteRange', { key: B('/t/l') });
    await rawB.call('Lease', 'LeaseRevoke', { ID: g.ID });
    await expectGrpcError(rawA.call('KV', 'Put', { key: B('/t/l'), value: B('w'), lease: g.ID }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
  });

  it('a third instance with an empty ring still gives prev_kv of versions written before it started', async () => {
    await rawA.call('KV', 'Put', { key: B('/t/old'), value: B('before') });
    const c = await startServer({ databaseUrl: a.databaseUrl });
    const rawC = rawClients(c.endpoint);
    const w = new RawWatch(rawC);
    try {
      await indexReady(c);
      await w.watch({ key: B('/t/old'), prev_kv: true });
      await rawC.call('KV', 'Put', { key: B('/t/old'), value: B('after') });
      const r = await w.next();
      assert.equal(r.events[0].kv.value.toString(), 'after');
      assert.equal(r.events[0]!.prev_kv!.value.toString(), 'before');
      // Its key index was loaded from the database: versions continue.
      for (let i = 0; i < 3; i++) await rawC.call('KV', 'Put', { key: B('/t/old'), value: B(`again${i}`) });
      const { kv } = await get(rawC, '/t/old');
      assert.equal(Number(kv.version), 5);
      assert.ok(c.app.store.indexStats().keys > 0);
    } finally {
      w.close();
      rawC.close();
      await c.stop();
    }
  });
});

describe('Own commits whose predecessors only the head cache holds', () => {
  it('a range delete over keys written before this instance started is delivered locally with every prev_kv', async () => {
    // The first instance writes the keys and stops; the second starts with an empty watch ring
    // but loads the keys into its head cache, so the delete's prev_kvs can only come from there.
    const first = await startServer();
    const raw1 = rawClients(first.endpoint);
    const values = new Map<string, string>();
    for (let i = 0; i < 40; i++) {
      const v = `v${i}-`.padEnd(100 + i, 'x');
      await raw1.call('KV', 'Put', { key: B(`/c/k${String(i).padStart(2, '0')}`), value: B(v) });
      values.set(`/c/k${String(i).padStart(2, '0')}`, v);
    }
    await raw1.call('KV', 'Put', { key: B('/c/k00'), value: B('latest') }); // version 2
    values.set('/c/k00', 'latest');
    raw1.close();
    await first.stop();
    const srv = await startServer({ databaseUrl: first.databaseUrl });
    const raw = rawClients(srv.endpoint);
    const w = new RawWatch(raw);
    try {
      await waitFor('the head cache to load', async () => (srv.app.store.cacheStats()!.revision >= 0 ? true : undefined));
      await indexReady(srv);
      const stats = () => (srv.app.components[0] as WatchComponent).stats().feed;
      await w.watch({ key: B('/c/'), range_end: B('/c0'), prev_kv: true });
      // Give the feed's start-up read and the watch's creation time to settle.
      await new Promise((r) => setTimeout(r, 300));
      const local0 = stats().localDeliveries;
      const reads0 = stats().reads;
      // A put that replaces a key also gets its prev_kv from the cache, and its own kv.
      await raw.call('KV', 'Put', { key: B('/c/k01'), value: B('new'), prev_kv: true });
      const del = await raw.call('KV', 'DeleteRange', { key: B('/c/'), range_end: B('/c0') });
      assert.equal(Number(del.deleted), 40);
      const evs = [];
      while (evs.length < 41) evs.push(...(await w.next()).events);
      assert.deepEqual(evs[0].kv.value.toString(), 'new');
      assert.deepEqual(evs[0].prev_kv!.value.toString(), values.get('/c/k01'));
      values.set('/c/k01', 'new');
      const dels = evs.slice(1);
      assert.deepEqual(dels.map((e) => e.type), Array(40).fill(1));
      for (const e of dels) {
        const k = e.kv.key.toString();
        assert.equal(e.prev_kv?.value.toString(), values.get(k), k);
        assert.equal(Number(e.prev_kv!.version), k === '/c/k00' || k === '/c/k01' ? 2 : 1, k);
        assert.equal(e.prev_kv!.key.toString(), k);
        assert.equal(e.kv.value.length, 0);
      }
      // Both commits went to watchers from the writer's rows and the cache, without a read of
      // kv_log (a notification arriving while a commit was in flight may still start one).
      assert.equal(stats().localDeliveries - local0, 2, `local deliveries ${stats().localDeliveries - local0}, reads ${stats().reads - reads0}`);
    } finally {
      w.close();
      raw.close();
      await srv.stop();
    }
  });
});
