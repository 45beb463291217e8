/**
 * etcd's revision rules and Range semantics, pinned through the etcd3 npm client and raw gRPC.
 * Every expected value below is what etcd answered to the same requests (etcd 3.4.23 fed the
 * same raw gRPC calls; 3.5's source checked where they differ).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { expectGrpcError } from './helpers/raw.ts';
import { againstEtcd, openTarget, type KvTarget } from './helpers/kvtarget.ts';

const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const ALL = { key: B('\0'), range_end: B('\0') };
const COMPACTED = 'etcdserver: mvcc: required revision has been compacted';
const FUTURE = 'etcdserver: mvcc: required revision is a future revision';

/** Keys of a raw RangeResponse, in response order. */
function keys(r: any): string[] {
  return r.kvs.map((kv: any) => (kv.key as Buffer).toString('latin1'));
}

/** A raw KeyValue as [key, create_revision, mod_revision, version, value, lease]. */
function row(kv: any): [string, number, number, number, string, string] {
  return [kv.key.toString('latin1'), Number(kv.create_revision), Number(kv.mod_revision), Number(kv.version), kv.value.toString('latin1'), kv.lease];
}


describe('revisions and versions', () => {
  let s: KvTarget;
  before(async () => { s = await openTarget(); });
  after(() => s?.stop());

  it('an empty store is at revision 1 and headers carry cluster_id, member_id and raft_term', async () => {
    const r = await s.raw.call('KV', 'Range', { key: B('a') });
    assert.equal(r.header.revision, '1');
    assert.deepEqual(r.kvs, []);
    assert.equal(r.count, '0');
    assert.equal(r.more, false);
    assert.notEqual(r.header.cluster_id, '0');
    assert.notEqual(r.header.member_id, '0');
    assert.notEqual(r.header.raft_term, '0');
    const all = await s.raw.call('KV', 'Range', ALL);
    assert.equal(all.header.revision, '1');
    assert.equal(all.header.cluster_id, r.header.cluster_id);
    assert.equal(all.header.member_id, r.header.member_id);
    const w = await s.raw.call('KV', 'Put', { key: B('probe'), value: B('') });
    assert.equal(w.header.cluster_id, r.header.cluster_id);
    assert.equal(w.header.member_id, r.header.member_id);
    assert.equal(w.header.raft_term, r.header.raft_term);
    await s.raw.call('KV', 'DeleteRange', { key: B('probe') });
  });

  it('create -> update -> delete -> recreate follows etcd: version restarts at 1 after a delete', async () => {
    // Revision is now 3 (probe put + delete above).
    const p1 = await s.raw.call('KV', 'Put', { key: B('k'), value: B('1') });
    assert.equal(p1.header.revision, '4');
    assert.equal(p1.prev_kv, null);
    const p2 = await s.raw.call('KV', 'Put', { key: B('k'), value: B('2'), prev_kv: true });
    assert.equal(p2.header.revision, '5');
    assert.deepEqual(row(p2.prev_kv), ['k', 4, 4, 1, '1', '0']);
    const g = await s.raw.call('KV', 'Range', { key: B('k') });
    assert.deepEqual(g.kvs.map(row), [['k', 4, 5, 2, '2', '0']]);
    assert.equal(g.header.revision, '5');

    const d = await s.raw.call('KV', 'DeleteRange', { key: B('k'), prev_kv: true });
    assert.equal(d.header.revision, '6');
    assert.equal(d.deleted, '1');
    assert.deepEqual(d.prev_kvs.map(row), [['k', 4, 5, 2, '2', '0']]);
    const gone = await s.raw.call('KV', 'Range', { key: B('k') });
    assert.deepEqual(gone.kvs, []);
    assert.equal(gone.header.revision, '6');

    const p3 = await s.raw.call('KV', 'Put', { key: B('k'), value: B('3'), prev_kv: true });
    assert.equal(p3.header.revision, '7');
    assert.equal(p3.prev_kv, null, 'a deleted key has no previous value');
    const again = await s.raw.call('KV', 'Range', { key: B('k') });
    assert.deepEqual(again.kvs.map(row), [['k', 7, 7, 1, '3', '0']], 'a put after a delete restarts version at 1 and create_revision');
  });

  it('historical reads see each version, a tombstone as absence, and count what existed then', async () => {
    const at = async (rev: number): Promise<any> => s.raw.call('KV', 'Range', { key: B('k'), revision: rev });
    assert.deepEqual((await at(3)).kvs, []);
    assert.deepEqual((await at(4)).kvs.map(row), [['k', 4, 4, 1, '1', '0']]);
    assert.deepEqual((await at(5)).kvs.map(row), [['k', 4, 5, 2, '2', '0']]);
    const deleted = await at(6);
    assert.deepEqual(deleted.kvs, []);
    assert.equal(deleted.count, '0');
    assert.equal(deleted.header.revision, '7', 'a historical read reports the current revision');
    assert.deepEqual((await at(7)).kvs.map(row), [['k', 7, 7, 1, '3', '0']]);
    // A negative revision means "latest" in etcd.
    assert.deepEqual((await s.raw.call('KV', 'Range', { key: B('k'), revision: -1 })).kvs.map(row), [['k', 7, 7, 1, '3', '0']]);
    await expectGrpcError(at(8), grpc.status.OUT_OF_RANGE, FUTURE);
    await expectGrpcError(at(1000), grpc.status.OUT_OF_RANGE, FUTURE);
  });

  it('a DeleteRange that deletes nothing does not bump the revision', async () => {
    const one = await s.raw.call('KV', 'DeleteRange', { key: B('nothing') });
    assert.equal(one.deleted, '0');
    assert.equal(one.header.revision, '7');
    const range = await s.raw.call('KV', 'DeleteRange', { key: B('x'), range_end: B('y'), prev_kv: true });
    assert.equal(range.deleted, '0');
    assert.deepEqual(range.prev_kvs, []);
    assert.equal(range.header.revision, '7');
    const r = await s.raw.call('KV', 'Range', ALL);
    assert.equal(r.header.revision, '7');
  });

  it('reads report the current revision; each write reports the revision it created', async () => {
    const revs: string[] = [];
    for (const v of ['a', 'b', 'c']) revs.push((await s.raw.call('KV', 'Put', { key: B(`w/${v}`), value: B(v) })).header.revision);
    assert.deepEqual(revs, ['8', '9', '10']);
    const r = await s.raw.call('KV', 'Range', { key: B('w/a') });
    assert.equal(r.header.revision, '10');
    assert.equal(r.kvs[0].mod_revision, '8');
    const d = await s.raw.call('KV', 'DeleteRange', { key: B('w/'), range_end: B('w0') });
    assert.equal(d.deleted, '3');
    assert.equal(d.header.revision, '11', 'one DeleteRange of three keys is one revision');
    const hist = await s.raw.call('KV', 'Range', { key: B('w/'), range_end: B('w0'), revision: 10 });
    assert.deepEqual(keys(hist), ['w/a', 'w/b', 'w/c']);
  });

  it('the etcd3 client sees the same revisions', async () => {
    const put = await s.etcd.put('e3').value('v1').exec();
    assert.equal(put.header.revision, '12');
    await s.etcd.put('e3').value('v2');
    const res = await s.etcd.get('e3').exec();
    assert.equal(res.kvs[0]!.version, '2');
    assert.equal(res.kvs[0]!.create_revision, '12');
    assert.equal(res.kvs[0]!.mod_revision, '13');
    assert.equal(await s.etcd.get('e3').revision(12).string(), 'v1');
    const prev = await s.etcd.put('e3').value('v3').getPrevious();
    assert.equal(prev.value.toString(), 'v2');
    const del = await s.etcd.delete().key('e3').exec();
    assert.equal(del.deleted, '1');
    assert.equal(del.header.revision, '15');
    assert.equal(await s.etcd.get('e3').string(), null);
  });
});

describe('Range', () => {
  let s: KvTarget;
  const range = (req: object): Promise<any> => s.raw.call('KV', 'Range', req);

  before(async () => {
    s = await openTarget();
    // The same history etcd was given: a, ab, b, c, d end up with distinct
    // create/mod revisions, versions and values.
    const put = (k: string, v: string): Promise<unknown> => s.raw.call('KV', 'Put', { key: B(k), value: B(v) });
    await put('a', '1'); // 2
    await put('a', '2'); // 3
    await put('b', 'x'); // 4
    await s.raw.call('KV', 'DeleteRange', { key: B('a') }); // 5
    await put('a', '3'); // 6
    await put('c', 'a'); // 7
    await put('c', 'b'); // 8
    await put('c', 'c'); // 9
    await put('d', '0'); // 10
    await put('ab', 'z'); // 11
  });
  after(() => s?.stop());

  it('returns every field of every key with key "\\0" and range_end "\\0"', async () => {
    const r = await range(ALL);
    assert.equal(r.header.revision, '11');
    assert.deepEqual(r.kvs.map(row), [
      ['a', 6, 6, 1, '3', '0'],
      ['ab', 11, 11, 1, 'z', '0'],
      ['b', 4, 4, 1, 'x', '0'],
      ['c', 7, 9, 3, 'c', '0'],
      ['d', 10, 10, 1, '0', '0'],
    ]);
    assert.equal(r.count, '5');
    assert.equal(r.more, false);
  });

  it('selects one key, a [key, range_end) interval, a prefix and everything from a key', async () => {
    assert.deepEqual(keys(await range({ key: B('c') })), ['c']);
    assert.deepEqual(keys(await range({ key: B('ab') })), ['ab']);
    assert.deepEqual(keys(await range({ key: B('a'), range_end: B('c') })), ['a', 'ab', 'b']);
    assert.deepEqual(keys(await range({ key: B('a'), range_end: B('b') })), ['a', 'ab'], 'prefix a');
    const from = await range({ key: B('b'), range_end: B('\0') });
    assert.deepEqual(keys(from), ['b', 'c', 'd']);
    assert.equal(from.count, '3');
  });

  it('a range_end at or below the key is an empty result, not an error', async () => {
    for (const req of [{ key: B('c'), range_end: B('a') }, { key: B('c'), range_end: B('c') }]) {
      const r = await range(req);
      assert.deepEqual(r.kvs, []);
      assert.equal(r.count, '0');
      assert.equal(r.header.revision, '11');
    }
  });

  it('limit truncates and sets more; count is every key in the range', async () => {
    const two = await range({ ...ALL, limit: 2 });
    assert.deepEqual(keys(two), ['a', 'ab']);
    assert.equal(two.more, true);
    assert.equal(two.count, '5');
    for (const limit of [5, 6, 0, -1]) {
      const r = await range({ ...ALL, limit });
      assert.deepEqual(keys(r), ['a', 'ab', 'b', 'c', 'd'], `limit ${limit}`);
      assert.equal(r.more, false, `limit ${limit}`);
      assert.equal(r.count, '5');
    }
  });

  it('count_only returns no kvs and the full count, whatever the limit', async () => {
    for (const req of [{ ...ALL, count_only: true }, { ...ALL, count_only: true, limit: 1 }, { ...ALL, count_only: true, keys_only: true }]) {
      const r = await range(req);
      assert.deepEqual(r.kvs, []);
      assert.equal(r.count, '5');
      assert.equal(r.more, false);
    }
  });

  it('keys_only returns every field but the value', async () => {
    const r = await range({ ...ALL, keys_only: true });
    assert.deepEqual(r.kvs.map(row), [
      ['a', 6, 6, 1, '', '0'], ['ab', 11, 11, 1, '', '0'], ['b', 4, 4, 1, '', '0'], ['c', 7, 9, 3, '', '0'], ['d', 10, 10, 1, '', '0'],
    ]);
  });

  // [sort_target, sort_order] -> keys, as etcd returns them. Targets: KEY VERSION CREATE MOD VALUE;
  // orders: NONE ASCEND DESCEND. A target other than KEY with order NONE sorts ascending; ties
  // stay in key order in both directions.
  const SORTED: Record<string, string> = {
    '0,0': 'a ab b c d', '0,1': 'a ab b c d', '0,2': 'd c b ab a',
    '1,0': 'a ab b d c', '1,1': 'a ab b d c', '1,2': 'c a ab b d',
    '2,0': 'b a c d ab', '2,1': 'b a c d ab', '2,2': 'ab d c a b',
    '3,0': 'b a c d ab', '3,1': 'b a c d ab', '3,2': 'ab d c a b',
    '4,0': 'd a c b ab', '4,1': 'd a c b ab', '4,2': 'ab b c a d',
  };
  it('sorts by every sort_target in every sort_order as etcd does', async () => {
    for (const [k, want] of Object.entries(SORTED)) {
      const [sort_target, sort_order] = k.split(',').map(Number);
      const r = await range({ ...ALL, sort_target, sort_order });
      assert.equal(keys(r).join(' '), want, `target ${sort_target} order ${sort_order}`);
      assert.equal(r.count, '5');
    }
  });

  // With a limit, etcd sorts everything first when an order is given, but with order NONE it
  // takes the first limit+1 keys in key order and sorts only those (so VALUE/NONE/limit 2 gives
  // "a b", not "d a").
  const SORTED_LIMIT_2: Record<string, string> = {
    '0,0': 'a ab', '0,1': 'a ab', '0,2': 'd c',
    '1,0': 'a ab', '1,1': 'a ab', '1,2': 'c a',
    '2,0': 'b a', '2,1': 'b a', '2,2': 'ab d',
    '3,0': 'b a', '3,1': 'b a', '3,2': 'ab d',
    '4,0': 'a b', '4,1': 'd a', '4,2': 'ab b',
  };
  it('applies limit around sorting exactly as etcd (order NONE limits before sorting)', async () => {
    for (const [k, want] of Object.entries(SORTED_LIMIT_2)) {
      const [sort_target, sort_order] = k.split(',').map(Number);
      const r = await range({ ...ALL, sort_target, sort_order, limit: 2 });
      assert.equal(keys(r).join(' '), want, `target ${sort_target} order ${sort_order}`);
      assert.equal(r.more, true);
      assert.equal(r.count, '5');
    }
  });

  it('keys_only still sorts by the stored value', async () => {
    assert.equal(keys(await range({ ...ALL, keys_only: true, sort_target: 4, sort_order: 2 })).join(' '), 'ab b c a d');
    const limited = await range({ ...ALL, keys_only: true, sort_target: 4, limit: 3 });
    assert.equal(keys(limited).join(' '), 'a c b');
    assert.equal(limited.more, true);
    assert.ok(limited.kvs.every((kv: any) => kv.value.length === 0));
  });

  it('filters on min/max mod and create revision; count ignores the filters', async () => {
    const cases: Array<[object, string, boolean]> = [
      [{ min_mod_revision: 8 }, 'ab c d', false],
      [{ max_mod_revision: 8 }, 'a b', false],
      [{ min_create_revision: 8 }, 'ab d', false],
      [{ max_create_revision: 8 }, 'a b c', false],
      [{ max_create_revision: 8, limit: 1 }, 'a', true],
      [{ min_mod_revision: 8, limit: 1, sort_target: 3, sort_order: 2 }, 'ab', true],
      [{ min_mod_revision: 7, max_mod_revision: 9, min_create_revision: 5 }, 'c', false],
    ];
    for (const [f, want, more] of cases) {
      const r = await range({ ...ALL, ...f });
      assert.equal(keys(r).join(' '), want, JSON.stringify(f));
      assert.equal(r.more, more, JSON.stringify(f));
      assert.equal(r.count, '5', JSON.stringify(f));
    }
    const counted = await range({ ...ALL, min_mod_revision: 8, count_only: true });
    assert.equal(counted.count, '5');
  });

  it('reads at a past revision with the same options', async () => {
    const at6 = await range({ ...ALL, revision: 6 });
    assert.deepEqual(at6.kvs.map(row), [['a', 6, 6, 1, '3', '0'], ['b', 4, 4, 1, 'x', '0']]);
    assert.equal(at6.count, '2');
    assert.equal(at6.header.revision, '11');
    const at9 = await range({ ...ALL, revision: 9, limit: 1 });
    assert.deepEqual(keys(at9), ['a']);
    assert.equal(at9.more, true);
    assert.equal(at9.count, '3');
    assert.equal((await range({ ...ALL, revision: 9, count_only: true })).count, '3');
    assert.deepEqual((await range({ key: B('c'), revision: 8 })).kvs.map(row), [['c', 7, 8, 2, 'b', '0']]);
    assert.equal(keys(await range({ ...ALL, revision: 10, keys_only: true, sort_target: 4, sort_order: 1 })).join(' '), 'd a c b');
    const limited = await range({ ...ALL, revision: 10, sort_target: 4, limit: 2 });
    assert.equal(keys(limited).join(' '), 'a c');
    assert.equal(limited.count, '4');
    assert.equal(keys(await range({ ...ALL, revision: 10, min_mod_revision: 5 })).join(' '), 'a c d');
    await expectGrpcError(range({ ...ALL, revision: 12 }), grpc.status.OUT_OF_RANGE, FUTURE);
  });

  it('serializable reads answer like linearizable ones', async () => {
    const r = await range({ key: B('a'), serializable: true });
    assert.deepEqual(r.kvs.map(row), [['a', 6, 6, 1, '3', '0']]);
    assert.equal(r.header.revision, '11');
  });

  it('rejects an empty key with "key is not provided"', async () => {
    await expectGrpcError(range({ key: B('') }), grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
    await expectGrpcError(range({ key: B(''), range_end: B('\0') }), grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
  });

  it('rejects an unknown sort order or target with "invalid sort option"', { skip: againstEtcd() && 'etcd < 3.6 crashes on it' }, async () => {
    // etcd 3.5 panics on an unknown sort target and ignores an unknown order; 3.6 answers both
    // with ErrGRPCInvalidSortOption, which is what a server must do instead of crashing.
    await expectGrpcError(range({ key: B('a'), sort_order: 7 }), grpc.status.INVALID_ARGUMENT, 'etcdserver: invalid sort option');
    await expectGrpcError(range({ key: B('a'), sort_target: 9 }), grpc.status.INVALID_ARGUMENT, 'etcdserver: invalid sort option');
    assert.equal((await range({ key: B('a') })).count, '1', 'the server is still up');
  });

  it('the etcd3 client gets prefixes, sorted and limited lists and counts', async () => {
    assert.deepEqual(await s.etcd.getAll().prefix('a').keys(), ['a', 'ab']);
    assert.deepEqual(await s.etcd.getAll().keys(), ['a', 'ab', 'b', 'c', 'd']);
    assert.deepEqual(await s.etcd.getAll().sort('Value', 'Descend').keys(), ['ab', 'b', 'c', 'a', 'd']);
    assert.deepEqual(await s.etcd.getAll().sort('Mod', 'Ascend').limit(3).keys(), ['b', 'a', 'c']);
    assert.deepEqual(await s.etcd.getAll().sort('Key', 'Descend').limit(2).keys(), ['d', 'c']);
    assert.equal(await s.etcd.getAll().count(), 5);
    assert.equal(await s.etcd.getAll().prefix('a').count(), 2);
    assert.deepEqual(await s.etcd.getAll().inRange({ start: 'ab', end: 'c' }).strings(), { ab: 'z', b: 'x' });
    assert.equal(await s.etcd.get('c').revision(7).string(), 'a');
    assert.equal(await s.etcd.get('a').revision(5).string(), null, 'deleted at 5');
    assert.deepEqual(await s.etcd.getAll().minModRevision(9).keys(), ['ab', 'c', 'd']);
    assert.deepEqual(await s.etcd.getAll().maxCreateRevision(6).keys(), ['a', 'b']);
  });
});

describe('bytes', () => {
  let s: KvTarget;
  before(async () => { s = await openTarget(); });
  after(() => s?.stop());
  const H = (h: string): Buffer => Buffer.from(h, 'hex');

  it('keys and values with NUL and non-UTF-8 bytes round-trip, and keys order bytewise', async () => {
    const pairs: Array<[string, string]> = [
      ['610062', '00ff00'], ['ff', 'c328'], ['61', '31'], ['6100', '32'], ['00', '33'],
      ['0000', '34'], ['01', '35'], ['6162', '36'], ['feff', '37'], ['ffff', '38'], ['c3', 'fffe'],
    ];
    for (const [k, v] of pairs) await s.raw.call('KV', 'Put', { key: H(k), value: H(v) });
    const r = await s.raw.call('KV', 'Range', { key: H('00'), range_end: H('00') });
    const got = r.kvs.map((kv: any) => [kv.key.toString('hex'), kv.value.toString('hex')]);
    const want = [...pairs].sort((a, b) => Buffer.compare(H(a[0]), H(b[0])));
    assert.deepEqual(got, want);
    assert.deepEqual(got.map((p: string[]) => p[0]), ['00', '0000', '01', '61', '6100', '610062', '6162', 'c3', 'feff', 'ff', 'ffff']);
    const one = await s.raw.call('KV', 'Range', { key: H('610062') });
    assert.equal(one.kvs[0].value.toString('hex'), '00ff00');
    assert.deepEqual(keys(await s.raw.call('KV', 'Range', { key: H('00'), range_end: H('01') })).map((k) => B(k).toString('hex')), ['00', '0000']);
    assert.deepEqual(keys(await s.raw.call('KV', 'Range', { key: H('ff'), range_end: H('00') })).map((k) => B(k).toString('hex')), ['ff', 'ffff']);
    const byValue = await s.raw.call('KV', 'Range', { key: H('00'), range_end: H('00'), sort_target: 4, sort_order: 2, limit: 3 });
    assert.deepEqual(byValue.kvs.map((kv: any) => kv.value.toString('hex')), ['fffe', 'c328', '38']);
  });

  it('the etcd3 client round-trips binary keys and values', async () => {
    const key = Buffer.from([0x00, 0x80, 0xff, 0x00]);
    const value = Buffer.from([0xde, 0xad, 0x00, 0xbe, 0xef]);
    await s.etcd.put(key).value(value);
    assert.deepEqual(await s.etcd.get(key).buffer(), value);
    const bufs = await s.etcd.getAll().prefix(Buffer.from([0x00, 0x80])).keyBuffers();
    assert.deepEqual(bufs, [key]);
  });
});
