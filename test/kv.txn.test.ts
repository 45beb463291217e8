/**
 * Txn semantics pinned through raw gRPC and the etcd3 client: compares, branches, revisions,
 * sub-response headers, etcd's duplicate-key and operation-count rules. Expected values are
 * etcd's answers to the same requests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { expectGrpcError } from './helpers/raw.ts';
import { againstEtcd, openTarget, type KvTarget } from './helpers/kvtarget.ts';

const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const INVALID = grpc.status.INVALID_ARGUMENT;
const DUP = 'etcdserver: duplicate key given in txn request';
const TOO_MANY = 'etcdserver: too many operations in txn request';

const put = (k: string, v: string, extra: object = {}): object => ({ request_put: { key: B(k), value: B(v), ...extra } });
const get = (k: string, extra: object = {}): object => ({ request_range: { key: B(k), ...extra } });
const del = (k: string, extra: object = {}): object => ({ request_delete_range: { key: B(k), ...extra } });
const txn = (t: object): object => ({ request_txn: t });

enum Target { VERSION = 0, CREATE = 1, MOD = 2, VALUE = 3, LEASE = 4 }
enum Result { EQUAL = 0, GREATER = 1, LESS = 2, NOT_EQUAL = 3 }
const FIELD = ['version', 'create_revision', 'mod_revision', 'value', 'lease'];
function cmp(key: string, target: Target, result: Result, operand: number | Buffer, extra: object = {}): object {
  return { key: B(key), target, result, [FIELD[target]!]: operand, ...extra };
}

function row(kv: any): [string, number, number, number, string] {
  return [kv.key.toString('latin1'), Number(kv.create_revision), Number(kv.mod_revision), Number(kv.version), kv.value.toString('latin1')];
}

describe('Txn', () => {
  let s: KvTarget;
  const call = (req: object): Promise<any> => s.raw.call('KV', 'Txn', req);
  const succeeded = async (compare: object[]): Promise<boolean> => (await call({ compare })).succeeded;

  before(async () => {
    s = await openTarget();
    await s.raw.call('Lease', 'LeaseGrant', { ID: 1234, TTL: 600 });
    await s.raw.call('KV', 'Put', { key: B('k'), value: B('v'), lease: 1234 }); // 2
    await s.raw.call('KV', 'Put', { key: B('t1'), value: B('x') }); // 3
    await s.raw.call('KV', 'Put', { key: B('t2'), value: B('y') }); // 4
  });
  after(() => s?.stop());

  it('an empty txn succeeds at the current revision without writing', async () => {
    const r = await call({});
    assert.equal(r.succeeded, true);
    assert.deepEqual(r.responses, []);
    assert.equal(r.header.revision, '4');
    assert.notEqual(r.header.cluster_id, '0');
    assert.notEqual(r.header.member_id, '0');
    assert.notEqual(r.header.raft_term, '0');
  });

  it('a read-only txn creates no revision; its sub-responses carry only a revision in their header', async () => {
    const r = await call({ success: [get('k'), get('t', { range_end: B('u') })] });
    assert.equal(r.header.revision, '4');
    const [a, b] = r.responses;
    assert.equal(a.response, 'response_range');
    assert.deepEqual(a.response_range.kvs.map(row), [['k', 2, 2, 1, 'v']]);
    assert.deepEqual(b.response_range.kvs.map(row), [['t1', 3, 3, 1, 'x'], ['t2', 4, 4, 1, 'y']]);
    assert.equal(b.response_range.count, '2');
    assert.deepEqual(a.response_range.header, { cluster_id: '0', member_id: '0', revision: '4', raft_term: '0' });
  });

  it('a writing txn is one revision; later ops see earlier puts; every sub-header has that revision', async () => {
    const r = await call({ success: [get('n', { range_end: B('o') }), put('n1', 'a'), get('n1'), put('n2', 'b', { prev_kv: true }), get('n', { range_end: B('o'), count_only: true })] });
    assert.equal(r.succeeded, true);
    assert.equal(r.header.revision, '5');
    const sub = r.responses.map((x: any) => x[x.response]);
    // etcd fills a sub-response header with the txn's revision so far: 4 before its first write.
    assert.deepEqual(sub.map((x: any) => x.header.revision), ['4', '5', '5', '5', '5']);
    assert.deepEqual(sub[0].header, { cluster_id: '0', member_id: '0', revision: '4', raft_term: '0' });
    assert.deepEqual(sub[0].kvs, []);
    assert.deepEqual(sub[2].kvs.map(row), [['n1', 5, 5, 1, 'a']]);
    assert.equal(sub[3].prev_kv, null);
    assert.equal(sub[4].count, '2');
    const after = await s.raw.call('KV', 'Range', { key: B('n'), range_end: B('o') });
    assert.deepEqual(after.kvs.map(row), [['n1', 5, 5, 1, 'a'], ['n2', 5, 5, 1, 'b']]);
    assert.equal(after.header.revision, '5');
  });

  it('a txn whose only write deletes nothing creates no revision', async () => {
    const r = await call({ success: [del('nothing'), get('t1')] });
    assert.equal(r.header.revision, '5');
    assert.equal(r.responses[0].response_delete_range.header.revision, '5');
  });

  it('compares VALUE, VERSION, CREATE, MOD and LEASE with EQUAL, GREATER, LESS and NOT_EQUAL', async () => {
    // t1: version 1, create 3, mod 3, value "x", no lease; k: lease 1234.
    const expect: Array<[string, Target, number | Buffer, [boolean, boolean, boolean, boolean]]> = [
      // key, target, operand, [EQUAL, GREATER, LESS, NOT_EQUAL]
      ['t1', Target.VERSION, 1, [true, false, false, false]],
      ['t1', Target.VERSION, 0, [false, true, false, true]],
      ['t1', Target.VERSION, 2, [false, false, true, true]],
      ['t1', Target.CREATE, 3, [true, false, false, false]],
      ['t1', Target.CREATE, 10, [false, false, true, true]],
      ['t1', Target.MOD, 2, [false, true, false, true]],
      ['t1', Target.MOD, 100, [false, false, true, true]],
      ['t1', Target.VALUE, B('w'), [false, true, false, true]],
      ['t1', Target.VALUE, B('x'), [true, false, false, false]],
      ['t1', Target.VALUE, B('xx'), [false, false, true, true]],
      ['k', Target.LEASE, 1234, [true, false, false, false]],
      ['k', Target.LEASE, 1000, [false, true, false, true]],
      ['t1', Target.LEASE, 0, [true, false, false, false]],
    ];
    for (const [key, target, operand, want] of expect) {
      const got = [];
      for (const result of [Result.EQUAL, Result.GREATER, Result.LESS, Result.NOT_EQUAL]) got.push(await succeeded([cmp(key, target, result, operand)]));
      assert.deepEqual(got, want, `${key} ${Target[target]} ${String(operand)}`);
    }
  });

  it('picks the success or failure branch; all compares must hold', async () => {
    const ok = await call({ compare: [cmp('t1', Target.VALUE, Result.EQUAL, B('x'))], success: [get('t1')], failure: [get('t2')] });
    assert.equal(ok.succeeded, true);
    assert.deepEqual(ok.responses[0].response_range.kvs.map(row), [['t1', 3, 3, 1, 'x']]);
    const no = await call({ compare: [cmp('t1', Target.VALUE, Result.EQUAL, B('y'))], success: [get('t1')], failure: [get('t2')] });
    assert.equal(no.succeeded, false);
    assert.deepEqual(no.responses[0].response_range.kvs.map(row), [['t2', 4, 4, 1, 'y']]);
    assert.equal(await succeeded([cmp('t1', Target.VERSION, Result.EQUAL, 1), cmp('t2', Target.VALUE, Result.EQUAL, B('y'))]), true);
    assert.equal(await succeeded([cmp('t1', Target.VERSION, Result.EQUAL, 1), cmp('t2', Target.VALUE, Result.EQUAL, B('z'))]), false);
  });

  it('a missing key compares as zero values, but any VALUE compare on it fails', async () => {
    assert.equal(await succeeded([cmp('nokey', Target.VERSION, Result.EQUAL, 0)]), true);
    assert.equal(await succeeded([cmp('nokey', Target.CREATE, Result.EQUAL, 0)]), true);
    assert.equal(await succeeded([cmp('nokey', Target.MOD, Result.LESS, 5)]), true);
    assert.equal(await succeeded([cmp('nokey', Target.LEASE, Result.EQUAL, 0)]), true);
    assert.equal(await succeeded([cmp('nokey', Target.VALUE, Result.NOT_EQUAL, B('y'))]), false);
    assert.equal(await succeeded([cmp('nokey', Target.VALUE, Result.EQUAL, B(''))]), false);
  });

  it('a compare without its operand compares against the zero value', async () => {
    assert.equal(await succeeded([{ key: B('t1'), target: Target.VALUE, result: Result.EQUAL }]), false);
    assert.equal(await succeeded([{ key: B('t1'), target: Target.VERSION, result: Result.GREATER }]), true);
  });

  it('a compare over a range must hold for every key in it; an empty range compares as a missing key', async () => {
    const T = { range_end: B('u') }; // t1 (version 1, "x"), t2 (version 1, "y")
    assert.equal(await succeeded([cmp('t', Target.VERSION, Result.EQUAL, 1, T)]), true);
    assert.equal(await succeeded([cmp('t', Target.VALUE, Result.EQUAL, B('x'), T)]), false);
    assert.equal(await succeeded([cmp('t', Target.VALUE, Result.GREATER, B('w'), T)]), true);
    assert.equal(await succeeded([cmp('t', Target.MOD, Result.LESS, 4, T)]), false);
    assert.equal(await succeeded([cmp('t', Target.MOD, Result.LESS, 5, T)]), true);
    const EMPTY = { range_end: B('zzz') };
    assert.equal(await succeeded([cmp('zz', Target.VERSION, Result.EQUAL, 0, EMPTY)]), true);
    assert.equal(await succeeded([cmp('zz', Target.VALUE, Result.NOT_EQUAL, B('x'), EMPTY)]), false);
    // From-key: k, n1, n2, t1, t2 all have version 1.
    assert.equal(await succeeded([cmp('a', Target.VERSION, Result.EQUAL, 1, { range_end: B('\0') })]), true);
    assert.equal(await succeeded([cmp('a', Target.CREATE, Result.GREATER, 2, { range_end: B('\0') })]), false);
  });

  it('nested txns: compares are evaluated before anything runs; nested headers are empty', async () => {
    // Revision 5 now. The outer compare holds; the inner one sees n3 missing (version 0) even
    // though the outer branch puts n3 first, because every compare sees the state before the txn.
    const r = await call({
      compare: [cmp('t1', Target.VERSION, Result.NOT_EQUAL, 0)],
      success: [
        put('n3', 'a'),
        txn({ compare: [cmp('n3', Target.VERSION, Result.EQUAL, 0)], success: [put('n4', 'b'), get('n3')], failure: [put('n5', 'c')] }),
        get('n', { range_end: B('o') }),
      ],
    });
    assert.equal(r.succeeded, true);
    assert.equal(r.header.revision, '6');
    const inner = r.responses[1].response_txn;
    assert.equal(inner.succeeded, true);
    assert.deepEqual(inner.header, { cluster_id: '0', member_id: '0', revision: '0', raft_term: '0' });
    assert.equal(inner.responses[0].response_put.header.revision, '6');
    assert.deepEqual(inner.responses[1].response_range.kvs.map(row), [['n3', 6, 6, 1, 'a']]);
    assert.deepEqual(r.responses[2].response_range.kvs.map(row), [['n1', 5, 5, 1, 'a'], ['n2', 5, 5, 1, 'b'], ['n3', 6, 6, 1, 'a'], ['n4', 6, 6, 1, 'b']]);
    const ro = await call({ success: [txn({ success: [get('n4')] })] });
    assert.equal(ro.header.revision, '6', 'a nested read-only txn writes nothing');
    assert.equal(ro.responses[0].response_txn.responses[0].response_range.header.revision, '6');
  });

  it('ranges at a past revision work inside a txn; compacted or future ones fail the whole txn', async () => {
    const r = await call({ success: [get('t1', { revision: 2 }), get('k', { revision: 2 })] });
    assert.deepEqual(r.responses[0].response_range.kvs, []);
    assert.deepEqual(r.responses[1].response_range.kvs.map(row), [['k', 2, 2, 1, 'v']]);
    assert.equal(r.responses[1].response_range.header.revision, '6');
    await expectGrpcError(call({ success: [get('k', { revision: 1000 })] }), grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
    await expectGrpcError(call({ success: [put('never', 'x'), get('k', { revision: 1000 })] }), grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
    assert.deepEqual((await s.raw.call('KV', 'Range', { key: B('never') })).kvs, [], 'nothing of a failed txn is written');
  });

  it('checks puts only on the branch that runs: ignore_value on a missing key, an unknown lease', async () => {
    await expectGrpcError(call({ success: [put('missing', '', { ignore_value: true })] }), INVALID, 'etcdserver: key not found');
    await expectGrpcError(call({ success: [put('x', '1', { lease: 77 })] }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
    const skipped = await call({ failure: [put('missing', '', { ignore_value: true }), put('x', '1', { lease: 77 })] });
    assert.equal(skipped.succeeded, true);
    assert.equal(skipped.header.revision, '6');
    // The key must exist before the txn: a put earlier in the same txn does not count.
    await expectGrpcError(call({ success: [put('fresh', 'a'), put('fresh2', '', { ignore_value: true })] }), INVALID, 'etcdserver: key not found');
  });

  it('checks the shape of both branches: empty keys and empty RequestOps fail even on the branch not taken', async () => {
    await expectGrpcError(call({ compare: [{ key: B(''), target: 0 }] }), INVALID, 'etcdserver: key is not provided');
    await expectGrpcError(call({ success: [put('', 'x')] }), INVALID, 'etcdserver: key is not provided');
    await expectGrpcError(call({ failure: [get('')] }), INVALID, 'etcdserver: key is not provided');
    await expectGrpcError(call({ success: [{}] }), INVALID, 'etcdserver: key not found');
    await expectGrpcError(call({ compare: [cmp('t1', Target.VERSION, Result.NOT_EQUAL, 0)], failure: [{}] }), INVALID, 'etcdserver: key not found');
    await expectGrpcError(call({ failure: [put('a', 'x', { ignore_value: true })] }), INVALID, 'etcdserver: value is provided');
  });

  it('rejects writing one key twice: "duplicate key given in txn request"', async () => {
    await expectGrpcError(call({ success: [put('a', '1'), put('a', '2')] }), INVALID, DUP);
    await expectGrpcError(call({ failure: [put('a', '1'), put('a', '2')] }), INVALID, DUP);
    await expectGrpcError(call({ success: [put('a', '1'), del('a')] }), INVALID, DUP);
    await expectGrpcError(call({ success: [del('a', { range_end: B('b') }), put('aa', '2')] }), INVALID, DUP);
    await expectGrpcError(call({ success: [put('n', '1'), txn({ success: [put('n', '2')] })] }), INVALID, DUP);
    await expectGrpcError(call({ success: [put('n', '1'), txn({ failure: [put('n', '2')] })] }), INVALID, DUP);
    await expectGrpcError(call({ success: [txn({ success: [put('n', '1')] }), txn({ success: [put('n', '2')] })] }), INVALID, DUP);
    await expectGrpcError(call({ success: [del('n'), txn({ success: [put('n', '2')] })] }), INVALID, DUP);
    await expectGrpcError(call({ success: [put('n', '1'), txn({ success: [del('n')] })] }), INVALID, DUP);
    await expectGrpcError(call({ success: [txn({ success: [put('n', '1'), del('n')] })] }), INVALID, DUP);
    assert.equal((await s.raw.call('KV', 'Range', { key: B('a') })).header.revision, '6');
  });

  it('allows what etcd allows: one key in both branches, in then/else of a nested txn, deleted twice', async () => {
    const both = await call({ compare: [cmp('t1', Target.VERSION, Result.EQUAL, 1)], success: [put('q', '1')], failure: [put('q', '2')] });
    assert.equal(both.succeeded, true);
    assert.equal(both.header.revision, '7');
    const nested = await call({ success: [txn({ compare: [cmp('q', Target.VALUE, Result.EQUAL, B('1'))], success: [put('q', 'then')], failure: [put('q', 'else')] })] });
    assert.equal(nested.header.revision, '8');
    assert.equal(nested.responses[0].response_txn.succeeded, true);
    const twice = await call({ success: [del('q'), del('q')] });
    assert.equal(twice.responses[0].response_delete_range.deleted, '1');
    assert.equal(twice.responses[1].response_delete_range.deleted, '0');
    assert.equal(twice.header.revision, '9');
    // etcd reads a delete's range_end literally in this check: a from-key delete ("\0") overlaps no put.
    const fromKey = await call({ success: [del('zy', { range_end: B('\0') }), put('zz', 'z')] });
    assert.equal(fromKey.header.revision, '10');
    assert.deepEqual((await s.raw.call('KV', 'Range', { key: B('zz') })).kvs.map(row), [['zz', 10, 10, 1, 'z']]);
  });

  it('a txn that would write one key twice in one revision is a duplicate key (where etcd stores both)', { skip: againstEtcd() && 'pgetcd only' }, async () => {
    // etcd's syntactic check lets these through and keeps two versions of the key in one
    // revision; kv_log keeps one row per key and revision, so pgetcd refuses them cleanly.
    await expectGrpcError(call({ success: [put('zz', 'again'), del('zy', { range_end: B('\0') })] }), INVALID, DUP);
    await expectGrpcError(call({ success: [del('zy', { range_end: B('\0') }), put('zz', 'again')] }), INVALID, DUP);
    await expectGrpcError(call({ success: [txn({ success: [put('t1', 'p')] }), txn({ success: [del('t1')] })] }), INVALID, DUP);
    const r = await s.raw.call('KV', 'Range', { key: B('zz') });
    assert.deepEqual(r.kvs.map(row), [['zz', 10, 10, 1, 'z']]);
    assert.equal(r.header.revision, '10');
  });

  it('more than 128 operations in a branch or compares is "too many operations in txn request"', async () => {
    const n = (count: number, f: (i: number) => object): object[] => Array.from({ length: count }, (_, i) => f(i));
    await expectGrpcError(call({ success: n(129, (i) => get(`k${i}`)) }), INVALID, TOO_MANY);
    await expectGrpcError(call({ failure: n(129, (i) => get(`k${i}`)) }), INVALID, TOO_MANY);
    await expectGrpcError(call({ compare: n(129, (i) => cmp(`k${i}`, Target.VERSION, Result.EQUAL, 0)) }), INVALID, TOO_MANY);
    const max = await call({ success: n(128, (i) => put(`m${i}`, 'v')) });
    assert.equal(max.header.revision, '11');
    assert.equal(max.responses.length, 128);
    // A nested txn may use only what its parent leaves: 64 ops + 1 txn leave 63.
    await expectGrpcError(call({ success: [...n(64, (i) => get(`k${i}`)), txn({ success: n(64, (i) => get(`j${i}`)) })] }), INVALID, TOO_MANY);
    const fits = await call({ success: [...n(64, (i) => get(`k${i}`)), txn({ success: n(63, (i) => get(`j${i}`)) })] });
    assert.equal(fits.responses.length, 65);
    // The count comes before other checks.
    await expectGrpcError(call({ success: [{}, ...n(128, (i) => get(`k${i}`))] }), INVALID, TOO_MANY);
  });

  it('the etcd3 client runs if/then/else transactions', async () => {
    const r = await s.etcd.if('t1', 'Value', '==', 'x').then(s.etcd.put('e1').value('yes')).else(s.etcd.put('e1').value('no')).commit();
    assert.equal(r.succeeded, true);
    assert.equal(await s.etcd.get('e1').string(), 'yes');
    const r2 = await s.etcd.if('e1', 'Version', '>', 1).then(s.etcd.delete().key('e1')).else(s.etcd.put('e1').value('again'), s.etcd.get('e1')).commit();
    assert.equal(r2.succeeded, false);
    assert.equal(r2.responses[1]!.response_range!.kvs[0]!.value.toString(), 'again');
    assert.equal(r2.header.revision, r2.responses[0]!.response_put!.header.revision);
    const r3 = await s.etcd.if('e1', 'Mod', '==', Number(r2.header.revision)).and('e1', 'Create', '<', Number(r2.header.revision)).then(s.etcd.delete().key('e1')).commit();
    assert.equal(r3.succeeded, true);
    assert.equal(await s.etcd.get('e1').string(), null);
  });
});

describe('Txn with --max-txn-ops 3', () => {
  let s: KvTarget;
  before(async () => { s = await openTarget({ maxTxnOps: 3 }); });
  after(() => s?.stop());

  it('limits each of compare, success and failure to the configured count', async () => {
    const ops = (n: number): object[] => Array.from({ length: n }, (_, i) => put(`k${i}`, 'v'));
    const ok = await s.raw.call('KV', 'Txn', { success: ops(3) });
    assert.equal(ok.responses.length, 3);
    await expectGrpcError(s.raw.call('KV', 'Txn', { success: ops(4) }), INVALID, TOO_MANY);
    await expectGrpcError(s.raw.call('KV', 'Txn', { failure: ops(4) }), INVALID, TOO_MANY);
    await expectGrpcError(s.raw.call('KV', 'Txn', { compare: Array.from({ length: 4 }, (_, i) => cmp(`k${i}`, Target.VERSION, Result.EQUAL, 0)) }), INVALID, TOO_MANY);
    await expectGrpcError(s.raw.call('KV', 'Txn', { success: [get('a'), txn({ success: [get('b'), get('c')] })] }), INVALID, TOO_MANY);
    const nested = await s.raw.call('KV', 'Txn', { success: [get('a'), txn({ success: [get('b')] })] });
    assert.equal(nested.responses.length, 2);
  });
});

describe('Txn reads after its own writes when a compare covers a range', () => {
  let s: KvTarget;
  const call = (req: object): Promise<any> => s.raw.call('KV', 'Txn', req);
  before(async () => { s = await openTarget(); });
  after(() => s?.stop());

  // Expected answers are etcd 3.4's to the same requests (PGETCD_TEST_AGAINST_ETCD=1).
  it('a range after a put sees the put, in either branch, nested, with sort and limit', async () => {
    const R = Number((await s.raw.call('KV', 'Put', { key: B('P/b/2'), value: B('') })).header.revision);
    const all = { range_end: B('\0') };
    const span = { range_end: B('P/e') };
    // Success branch.
    const a = await call({ compare: [cmp('P/b', Target.MOD, Result.NOT_EQUAL, R + 1, all)], success: [put('P/b/2', 'v3'), get('P/b', span)] });
    assert.equal(a.succeeded, true);
    assert.deepEqual(a.responses[1].response_range.kvs.map(row), [['P/b/2', R, R + 1, 2, 'v3']]);
    // Failure branch, with sort and limit.
    const b = await call({
      compare: [cmp('P/b', Target.MOD, Result.EQUAL, R, all)],
      failure: [put('P/b/2', 'v4'), put('P/c', 'new'), get('P/b', { ...span, sort_order: 2, sort_target: 3, limit: 1 })],
    });
    assert.equal(b.succeeded, false);
    assert.deepEqual(b.responses[2].response_range.kvs.map(row), [['P/b/2', R, R + 2, 3, 'v4']]);
    assert.equal(b.responses[2].response_range.more, true);
    // Nested txn: the inner range sees the outer put; the outer range sees the inner put.
    const c = await call({
      compare: [cmp('P/', Target.VERSION, Result.GREATER, 0, span)],
      success: [
        put('P/b/2', 'v5'),
        txn({ compare: [cmp('P/', Target.CREATE, Result.GREATER, 0, span)], success: [put('P/c', 'inner'), get('P/', span)] }),
        get('P/', { ...span, sort_order: 1, sort_target: 4 }),
      ],
    });
    assert.equal(c.succeeded, true);
    assert.deepEqual(c.responses[1].response_txn.responses[1].response_range.kvs.map(row), [['P/b/2', R, R + 3, 4, 'v5'], ['P/c', R + 2, R + 3, 2, 'inner']]);
    assert.deepEqual(c.responses[2].response_range.kvs.map(row), [['P/c', R + 2, R + 3, 2, 'inner'], ['P/b/2', R, R + 3, 4, 'v5']]);
    const now = await s.raw.call('KV', 'Range', { key: B('P/'), ...span });
    assert.deepEqual(now.kvs.map(row), [['P/b/2', R, R + 3, 4, 'v5'], ['P/c', R + 2, R + 3, 2, 'inner']]);
  });

  it('a keys_only range sorted by value inside a txn is ordered by the values it does not show', async () => {
    await s.raw.call('KV', 'Put', { key: B('S/1'), value: B('c') });
    await s.raw.call('KV', 'Put', { key: B('S/2'), value: B('a') });
    await s.raw.call('KV', 'Put', { key: B('S/3'), value: B('b') });
    const r = await call({ success: [put('S/0', 'd'), get('S/', { range_end: B('S0'), keys_only: true, sort_target: 4, sort_order: 1 })] });
    const kvs = r.responses[1].response_range.kvs;
    assert.deepEqual(kvs.map((kv: any) => kv.key.toString()), ['S/2', 'S/3', 'S/1', 'S/0']);
    assert.deepEqual(kvs.map((kv: any) => kv.value.length), [0, 0, 0, 0]);
  });
});
