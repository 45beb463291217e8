/**
 * Concurrent writers, on one instance and on two instances sharing a database: revisions stay
 * unique, gapless and in commit order, versions count correctly, and an acknowledged write is
 * visible to a linearizable read on the other instance at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { startPair, startServer, type ServerPair, type TestServer } from './helpers/server.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { sqlFor } from './helpers/db.ts';

const B = (s: string): Buffer => Buffer.from(s, 'latin1');

function assertGapless(revs: number[], from: number, what: string): void {
  const sorted = [...revs].sort((a, b) => a - b);
  assert.equal(new Set(sorted).size, sorted.length, `${what}: revisions are unique`);
  assert.deepEqual(sorted, Array.from({ length: revs.length }, (_, i) => from + i), `${what}: revisions are gapless from ${from}`);
}

async function currentRevision(raw: Raw): Promise<number> {
  return Number((await raw.call('KV', 'Range', { key: B('\0'), count_only: true })).header.revision);
}

describe('one instance, 500 concurrent writers', () => {
  let srv: TestServer;
  let raw: Raw;
  let etcd: Etcd3;
  before(async () => {
    srv = await startServer();
    raw = rawClients(srv.endpoint);
    etcd = new Etcd3({ hosts: srv.endpoint });
  });
  after(async () => {
    etcd.close();
    raw.close();
    await srv.stop();
  });

  it('500 concurrent Puts of one key (etcd3 client): unique gapless revisions, version = order of commit', async () => {
    const base = await currentRevision(raw);
    const res = await Promise.all(Array.from({ length: 500 }, (_, i) => etcd.put('same').value(`v${i}`).exec()));
    const revs = res.map((r) => Number(r.header.revision));
    assertGapless(revs, base + 1, 'same key');
    const kv = (await etcd.get('same').exec()).kvs[0]!;
    assert.equal(kv.version, '500');
    assert.equal(kv.create_revision, String(base + 1));
    assert.equal(kv.mod_revision, String(base + 500));
    // The value at each revision is the one whose put was acknowledged with that revision.
    const byRev = new Map(revs.map((r, i) => [r, `v${i}`]));
    assert.equal(kv.value.toString(), byRev.get(base + 500));
    const sql = sqlFor(srv.databaseUrl);
    try {
      const rows = await sql`SELECT mod_revision::int AS rev, version::int AS version, convert_from(value, 'UTF8') AS value
        FROM kv_log WHERE key = ${B('same')} ORDER BY mod_revision`;
      assert.equal(rows.length, 500);
      rows.forEach((r, i) => {
        assert.equal(r.rev, base + 1 + i);
        assert.equal(r.version, i + 1, 'version counts puts in revision order');
        assert.equal(r.value, byRev.get(r.rev));
      });
    } finally {
      await sql.end();
    }
    for (const rev of [base + 1, base + 250, base + 500]) {
      const r = await raw.call('KV', 'Range', { key: B('same'), revision: rev });
      assert.equal(r.kvs[0].version, String(rev - base));
      assert.equal(r.kvs[0].value.toString(), byRev.get(rev));
    }
  });

  it('500 concurrent Puts of different keys (raw): unique gapless revisions, each key at version 1', async () => {
    const base = await currentRevision(raw);
    const res = await Promise.all(Array.from({ length: 500 }, (_, i) => raw.call('KV', 'Put', { key: B(`d/${i}`), value: B(`${i}`) })));
    const revs = res.map((r: any) => Number(r.header.revision));
    assertGapless(revs, base + 1, 'different keys');
    const all = await raw.call('KV', 'Range', { key: B('d/'), range_end: B('d0') });
    assert.equal(all.count, '500');
    const revOf = new Map(res.map((r: any, i) => [`d/${i}`, r.header.revision]));
    for (const kv of all.kvs) {
      const k = kv.key.toString();
      assert.equal(kv.version, '1');
      assert.equal(kv.mod_revision, revOf.get(k), `${k} carries the revision its put was acknowledged with`);
      assert.equal(kv.create_revision, kv.mod_revision);
    }
  });

  it('concurrent compare-and-swap increments never lose an update', async () => {
    await raw.call('KV', 'Put', { key: B('counter'), value: B('0') });
    let conflicts = 0;
    const worker = async (n: number): Promise<void> => {
      for (let done = 0; done < n;) {
        const r = await raw.call('KV', 'Range', { key: B('counter') });
        const kv = r.kvs[0];
        const t = await raw.call('KV', 'Txn', {
          compare: [{ key: B('counter'), target: 2, result: 0, mod_revision: kv.mod_revision }],
          success: [{ request_put: { key: B('counter'), value: B(String(Number(kv.value.toString()) + 1)) } }],
        });
        if (t.succeeded) done++;
        else conflicts++;
      }
    };
    await Promise.all(Array.from({ length: 20 }, () => worker(10)));
    const r = await raw.call('KV', 'Range', { key: B('counter') });
    assert.equal(r.kvs[0].value.toString(), '200');
    assert.equal(r.kvs[0].version, '201');
    assert.ok(conflicts > 0, 'the workers did race');
  });

  it('writes mixed with deletes and txns keep revisions gapless', async () => {
    for (let j = 0; j < 10; j++) await raw.call('KV', 'Put', { key: B(`md/${j}`), value: B('x') });
    const base = await currentRevision(raw);
    const ops: Array<Promise<any>> = [];
    for (let i = 0; i < 100; i++) {
      ops.push(raw.call('KV', 'Put', { key: B(`m/${i % 10}`), value: B(`${i}`) }));
      ops.push(raw.call('KV', 'Txn', { success: [{ request_put: { key: B(`mt/${i}`), value: B('x') } }, { request_put: { key: B(`mu/${i}`), value: B('y') } }] }));
      if (i % 10 === 9) ops.push(raw.call('KV', 'DeleteRange', { key: B(`md/${(i - 9) / 10}`) }));
    }
    const res = await Promise.all(ops);
    assertGapless(res.map((r) => Number(r.header.revision)), base + 1, 'mixed');
    assert.equal((await raw.call('KV', 'Range', { key: B('mt/'), range_end: B('mt0'), count_only: true })).count, '100');
    assert.equal((await raw.call('KV', 'Range', { key: B('md/'), range_end: B('md0'), count_only: true })).count, '0');
    assert.equal((await raw.call('KV', 'Range', { key: B('m/0') })).kvs[0].version, '10');
  });
});

describe('two instances on one database', () => {
  let pair: ServerPair | undefined;
  let a: TestServer;
  let b: TestServer;
  let ra: Raw;
  let rb: Raw;
  before(async () => {
    pair = await startPair();
    ({ a, b, rawA: ra, rawB: rb } = pair);
  });
  after(async () => {
    await pair?.stop();
  });

  it('both answer as one cluster', async () => {
    const ha = (await ra.call('KV', 'Range', { key: B('x') })).header;
    const hb = (await rb.call('KV', 'Range', { key: B('x') })).header;
    assert.equal(ha.cluster_id, hb.cluster_id);
    assert.equal(ha.revision, hb.revision);
  });

  it('every write acknowledged by one instance is visible to a linearizable read on the other', async () => {
    for (let i = 0; i < 100; i++) {
      const [w, r] = i % 2 === 0 ? [ra, rb] : [rb, ra];
      const p = await w.call('KV', 'Put', { key: B('ping'), value: B(`${i}`) });
      const g = await r.call('KV', 'Range', { key: B('ping') });
      assert.ok(Number(g.header.revision) >= Number(p.header.revision), `read at ${g.header.revision} after write at ${p.header.revision}`);
      assert.equal(g.kvs[0].value.toString(), `${i}`);
      assert.equal(g.kvs[0].mod_revision, p.header.revision);
      assert.equal(g.kvs[0].version, String(i + 1));
    }
  });

  it('interleaved concurrent writes on both stay gapless, unique and ordered', async () => {
    const base = await currentRevision(ra);
    const writes = Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? ra : rb).call('KV', 'Put', { key: B(`both/${i % 7}`), value: B(`${i}`) }));
    const res = await Promise.all(writes);
    const revs = res.map((r: any) => Number(r.header.revision));
    assertGapless(revs, base + 1, 'two instances');
    // Versions of each key follow revision order across instances.
    const sql = sqlFor(a.databaseUrl);
    try {
      const rows = await sql`SELECT convert_from(key, 'UTF8') AS key, mod_revision::int AS rev, version::int AS version
        FROM kv_log WHERE key >= ${B('both/')} AND key < ${B('both0')} ORDER BY key, mod_revision`;
      assert.equal(rows.length, 400);
      const seen = new Map<string, number>();
      for (const r of rows) {
        const v = (seen.get(r.key) ?? 0) + 1;
        assert.equal(r.version, v, `${r.key}@${r.rev}`);
        seen.set(r.key, v);
      }
    } finally {
      await sql.end();
    }
    const fromB = await rb.call('KV', 'Range', { key: B('both/'), range_end: B('both0') });
    const fromA = await ra.call('KV', 'Range', { key: B('both/'), range_end: B('both0') });
    assert.deepEqual(fromA.kvs, fromB.kvs);
    assert.equal(fromA.header.revision, String(base + 400));
  });

  it('a compare-and-swap race across instances lets exactly one writer win each round', async () => {
    await ra.call('KV', 'Put', { key: B('leader'), value: B('none') });
    for (let round = 0; round < 10; round++) {
      const cur = (await ra.call('KV', 'Range', { key: B('leader') })).kvs[0];
      const attempt = (raw: Raw, who: string): Promise<any> => raw.call('KV', 'Txn', {
        compare: [{ key: B('leader'), target: 2, result: 0, mod_revision: cur.mod_revision }],
        success: [{ request_put: { key: B('leader'), value: B(who) } }],
      });
      const [x, y] = await Promise.all([attempt(ra, 'a'), attempt(rb, 'b')]);
      assert.equal(Number(x.succeeded) + Number(y.succeeded), 1, `round ${round}: one winner`);
      const winner = x.succeeded ? 'a' : 'b';
      assert.equal((await rb.call('KV', 'Range', { key: B('leader') })).kvs[0].value.toString(), winner);
    }
  });
});
