/**
 * Compact: etcd's answers (pinned against etcd with the same requests) and, under the hood,
 * what physical compaction leaves in kv_log.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { expectGrpcError } from './helpers/raw.ts';
import { sqlFor } from './helpers/db.ts';
import { againstEtcd, openTarget, type KvTarget } from './helpers/kvtarget.ts';
import { startPair, type ServerPair } from './helpers/server.ts';
import { COMPACT_LOCK } from '../src/store/compactor.ts';

const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const ALL = { key: B('\0'), range_end: B('\0') };
const COMPACTED = 'etcdserver: mvcc: required revision has been compacted';
const FUTURE = 'etcdserver: mvcc: required revision is a future revision';
const OUT = grpc.status.OUT_OF_RANGE;

function row(kv: any): [string, number, number, number, string] {
  return [kv.key.toString('latin1'), Number(kv.create_revision), Number(kv.mod_revision), Number(kv.version), kv.value.toString('latin1')];
}

describe('Compact', () => {
  let s: KvTarget;
  const compact = (revision: number, physical = false): Promise<any> => s.raw.call('KV', 'Compact', { revision, physical });
  const range = (req: object): Promise<any> => s.raw.call('KV', 'Range', req);
  before(async () => { s = await openTarget(); });
  after(() => s?.stop());

  it('compacting a never-compacted store at 0 or 1 succeeds; below 0 or again at 1 is "compacted"', async () => {
    await expectGrpcError(compact(-1), OUT, COMPACTED);
    assert.equal((await compact(0)).header.revision, '1');
    const r = await compact(1);
    assert.equal(r.header.revision, '1');
    assert.notEqual(r.header.cluster_id, '0');
    await expectGrpcError(compact(1), OUT, COMPACTED);
    await expectGrpcError(compact(2), OUT, FUTURE);
    assert.equal((await range({ key: B('a'), revision: 1 })).count, '0', 'a read at the compact revision works');
  });

  it('physical compaction keeps the latest version at or below the revision and drops the rest', async () => {
    const put = (k: string, v: string): Promise<any> => s.raw.call('KV', 'Put', { key: B(k), value: B(v) });
    const del = (k: string): Promise<any> => s.raw.call('KV', 'DeleteRange', { key: B(k) });
    await put('a', '1'); // 2
    await put('a', '2'); // 3
    await put('a', '3'); // 4
    await put('b', '1'); // 5
    await del('b'); // 6
    await put('c', '1'); // 7
    await del('c'); // 8
    await put('c', '2'); // 9
    await put('d', '1'); // 10
    await put('a', '4'); // 11

    const r = await compact(9, true);
    assert.equal(r.header.revision, '11', 'the header carries the current revision');

    if (s.server) {
      const sql = sqlFor(s.server.databaseUrl);
      try {
        const rows = await sql`SELECT convert_from(key, 'UTF8') AS key, mod_revision::int AS rev, deleted FROM kv_log ORDER BY key, mod_revision`;
        assert.deepEqual(rows.map((x) => [x.key, x.rev, x.deleted]), [
          ['a', 4, false], ['a', 11, false], // superseded a@2, a@3 gone; a@4 is the latest at or below 9
          ['c', 9, false], // c@7 and the tombstone c@8 gone
          ['d', 10, false], // b@5 and its tombstone b@6 gone entirely
        ]);
        const [m] = await sql`SELECT compact_revision::int AS c FROM meta`;
        assert.equal(m!.c, 9);
      } finally {
        await sql.end();
      }
    }

    await expectGrpcError(range({ ...ALL, revision: 8 }), OUT, COMPACTED);
    await expectGrpcError(range({ ...ALL, revision: 1, count_only: true }), OUT, COMPACTED);
    const at9 = await range({ ...ALL, revision: 9 });
    assert.deepEqual(at9.kvs.map(row), [['a', 2, 4, 3, '3'], ['c', 9, 9, 1, '2']]);
    assert.equal(at9.count, '2');
    assert.equal(at9.header.revision, '11');
    const at10 = await range({ ...ALL, revision: 10 });
    assert.deepEqual(at10.kvs.map(row), [['a', 2, 4, 3, '3'], ['c', 9, 9, 1, '2'], ['d', 10, 10, 1, '1']]);
    const now = await range(ALL);
    assert.deepEqual(now.kvs.map(row), [['a', 2, 11, 4, '4'], ['c', 9, 9, 1, '2'], ['d', 10, 10, 1, '1']]);
    // Compaction does not change versions or create revisions of live keys.
    assert.equal((await s.raw.call('KV', 'Put', { key: B('a'), value: B('5') })).header.revision, '12');
    assert.deepEqual((await range({ key: B('a') })).kvs.map(row), [['a', 2, 12, 5, '5']]);
  });

  it('compacting at or below the compact revision is "compacted"; above the current revision is "future"', async () => {
    await expectGrpcError(compact(9), OUT, COMPACTED);
    await expectGrpcError(compact(5), OUT, COMPACTED);
    await expectGrpcError(compact(0), OUT, COMPACTED);
    await expectGrpcError(compact(13), OUT, FUTURE);
  });

  it('a txn reading below the compact revision fails as a whole; compares are unaffected', async () => {
    await expectGrpcError(s.raw.call('KV', 'Txn', { success: [{ request_range: { key: B('a'), revision: 8 } }] }), OUT, COMPACTED);
    await expectGrpcError(s.raw.call('KV', 'Txn', { success: [{ request_put: { key: B('x'), value: B('1') } }, { request_range: { key: B('a'), revision: 8 } }] }), OUT, COMPACTED);
    assert.deepEqual((await range({ key: B('x') })).kvs, []);
    const r = await s.raw.call('KV', 'Txn', { compare: [{ key: B('b'), target: 0, result: 0, version: 0 }], success: [{ request_range: { key: B('a'), revision: 9 } }] });
    assert.equal(r.succeeded, true);
    assert.deepEqual(r.responses[0].response_range.kvs.map(row), [['a', 2, 4, 3, '3']]);
  });

  it('a logical compaction takes effect for reads as soon as it returns', async () => {
    assert.equal((await compact(11)).header.revision, '12');
    await expectGrpcError(range({ key: B('a'), revision: 10 }), OUT, COMPACTED);
    assert.deepEqual((await range({ key: B('a'), revision: 11 })).kvs.map(row), [['a', 2, 11, 4, '4']]);
  });

  it('the etcd3 client compacts and then gets "compacted" for older revisions', async () => {
    const r = await s.etcd.kv.compact({ revision: '12', physical: true });
    assert.equal(r.header.revision, '12');
    await assert.rejects(s.etcd.get('a').revision(11).exec(), /required revision has been compacted/);
    assert.equal(await s.etcd.get('a').revision(12).string(), '5');
  });
});

describe('physical compaction of a longer history', () => {
  let s: KvTarget;
  before(async () => { s = await openTarget(); });
  after(() => s?.stop());

  it('keeps exactly one row per live key and removes every deleted key', async () => {
    // 40 keys x 5 versions, then every 4th key deleted: 220 revisions.
    for (let v = 0; v < 5; v++) {
      await Promise.all(Array.from({ length: 40 }, (_, i) => s.raw.call('KV', 'Put', { key: B(`h/${String(i).padStart(2, '0')}`), value: B(`v${v}`) })));
    }
    for (let i = 0; i < 40; i += 4) await s.raw.call('KV', 'DeleteRange', { key: B(`h/${String(i).padStart(2, '0')}`) });
    const head = await s.raw.call('KV', 'Range', { key: B('h/'), range_end: B('h0') });
    assert.equal(head.header.revision, '211');
    assert.equal(head.count, '30');
    await s.raw.call('KV', 'Compact', { revision: 211, physical: true });
    const after = await s.raw.call('KV', 'Range', { key: B('h/'), range_end: B('h0') });
    assert.deepEqual(after.kvs.map(row), head.kvs.map(row));
    assert.deepEqual((await s.raw.call('KV', 'Range', { key: B('h/'), range_end: B('h0'), revision: 211 })).kvs.map(row), head.kvs.map(row));
    if (s.server) {
      const sql = sqlFor(s.server.databaseUrl);
      try {
        const [n] = await sql`SELECT count(*)::int AS n, count(DISTINCT key)::int AS k, bool_or(deleted) AS d FROM kv_log`;
        assert.deepEqual(n, { n: 30, k: 30, d: false });
      } finally {
        await sql.end();
      }
    }
  });
});

describe('Compact{physical} answers only after the removal, whoever does it', { skip: againstEtcd() && 'pgetcd instances' }, () => {
  let pair: ServerPair;
  let sql: ReturnType<typeof sqlFor>;
  before(async () => {
    pair = await startPair();
    sql = sqlFor(pair.a.databaseUrl);
  });
  after(async () => {
    await sql?.end();
    await pair?.stop();
  });
  const rows = async (): Promise<number> => Number((await sql`SELECT count(*)::int AS n FROM kv_log`)[0]!.n);

  it('waits while another instance holds the compaction lock, on both instances', async () => {
    for (let i = 0; i < 5; i++) await pair.rawA.call('KV', 'Put', { key: B('w'), value: B(String(i)) }); // revisions 2..6
    // A session holding the compaction lock, as another instance's compactor does in a chunk.
    const holder = await sql.reserve();
    await holder`SELECT pg_advisory_lock(${COMPACT_LOCK})`;
    let answered = 0;
    const a = pair.rawA.call('KV', 'Compact', { revision: 5, physical: true }).then((r) => { answered++; return r; });
    const b = pair.rawB.call('KV', 'Compact', { revision: 6, physical: true }).then((r) => { answered++; return r; });
    try {
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(answered, 0, 'no physical compaction is answered while its removal cannot run');
      assert.equal(await rows(), 5);
    } finally {
      await holder`SELECT pg_advisory_unlock(${COMPACT_LOCK})`;
      holder.release();
    }
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra.header.revision, '6');
    assert.equal(rb.header.revision, '6');
    assert.equal(await rows(), 1, 'only w@6 is left once both are answered');
  });

  it('a removal that fails is answered UNAVAILABLE, not OK; the next Compact{physical} finishes it', async () => {
    await pair.rawA.call('KV', 'Put', { key: B('w'), value: B('x') }); // 7
    await pair.rawA.call('KV', 'Put', { key: B('w'), value: B('y') }); // 8
    await sql.unsafe(`CREATE FUNCTION pgetcd_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`);
    await sql.unsafe('CREATE TRIGGER pgetcd_test_refuse BEFORE DELETE ON kv_log_default FOR EACH ROW EXECUTE FUNCTION pgetcd_test_refuse()');
    try {
      await expectGrpcError(pair.rawB.call('KV', 'Compact', { revision: 7, physical: true }), grpc.status.UNAVAILABLE, 'etcdserver: request timed out');
      assert.equal(await rows(), 3);
    } finally {
      await sql.unsafe('DROP TRIGGER pgetcd_test_refuse ON kv_log_default');
      await sql.unsafe('DROP FUNCTION pgetcd_test_refuse()');
    }
    await expectGrpcError(pair.rawB.call('KV', 'Compact', { revision: 7, physical: true }), OUT, COMPACTED);
    assert.equal((await pair.rawA.call('KV', 'Compact', { revision: 8, physical: true })).header.revision, '8');
    assert.equal(await rows(), 1);
  });
});
