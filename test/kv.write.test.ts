/**
 * Put and DeleteRange semantics and etcd's request checks and size limit, pinned through raw
 * gRPC and the etcd3 client. Expected values are etcd's answers to the same requests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS } from '../src/server/proto.ts';
import { expectGrpcError } from './helpers/raw.ts';
import { againstEtcd, openTarget, type KvTarget } from './helpers/kvtarget.ts';

const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const INVALID = grpc.status.INVALID_ARGUMENT;
const TOO_LARGE = 'etcdserver: request is too large';

function row(kv: any): [string, number, number, number, string, string] {
  return [kv.key.toString('latin1'), Number(kv.create_revision), Number(kv.mod_revision), Number(kv.version), kv.value.toString('latin1'), kv.lease];
}

describe('Put', () => {
  let s: KvTarget;
  const put = (req: object): Promise<any> => s.raw.call('KV', 'Put', req);
  const get = async (k: string): Promise<any> => (await s.raw.call('KV', 'Range', { key: B(k) })).kvs.map(row);
  before(async () => {
    s = await openTarget();
    const g = await s.raw.call('Lease', 'LeaseGrant', { ID: 1234, TTL: 600 });
    assert.equal(g.ID, '1234');
  });
  after(() => s?.stop());

  it('checks the request before anything else: empty key, ignore_value/ignore_lease with a value/lease', async () => {
    await expectGrpcError(put({ key: B(''), value: B('x') }), INVALID, 'etcdserver: key is not provided');
    await expectGrpcError(put({ key: B('k'), value: B('x'), ignore_value: true }), INVALID, 'etcdserver: value is provided');
    await expectGrpcError(put({ key: B('k'), lease: 1234, ignore_lease: true }), INVALID, 'etcdserver: lease is provided');
    // The request checks come first even for a key that does not exist.
    await expectGrpcError(put({ key: B('missing'), value: B('x'), ignore_value: true }), INVALID, 'etcdserver: value is provided');
  });

  it('ignore_value or ignore_lease on a missing key fails with "key not found"', async () => {
    await expectGrpcError(put({ key: B('k'), ignore_value: true }), INVALID, 'etcdserver: key not found');
    await expectGrpcError(put({ key: B('k'), ignore_lease: true, value: B('v') }), INVALID, 'etcdserver: key not found');
  });

  it('a missing key with ignore_value/ignore_lease and an unknown lease: the lease is checked first (etcd 3.4)', async () => {
    // Outside a txn etcd looks the lease up before it reads the key; inside one it reads the key first.
    await expectGrpcError(put({ key: B('gone'), ignore_value: true, lease: 999 }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
    await expectGrpcError(s.raw.call('KV', 'Txn', { success: [{ request_put: { key: B('gone'), ignore_value: true, lease: 999 } }] }), INVALID, 'etcdserver: key not found');
    assert.deepEqual((await s.raw.call('KV', 'Range', { key: B('gone') })).kvs, []);
  });

  it('an unknown lease fails with NOT_FOUND "requested lease not found" and writes nothing', async () => {
    await expectGrpcError(put({ key: B('k'), value: B('v'), lease: 999 }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
    const r = await s.raw.call('KV', 'Range', { key: B('k') });
    assert.equal(r.header.revision, '1', 'failed puts create no revision');
  });

  it('ignore_lease keeps the lease, ignore_value keeps the value, a plain put replaces both', async () => {
    const p1 = await put({ key: B('k'), value: B('v1'), lease: 1234 });
    assert.equal(p1.header.revision, '2');
    assert.deepEqual(await get('k'), [['k', 2, 2, 1, 'v1', '1234']]);

    const p2 = await put({ key: B('k'), value: B('v2'), ignore_lease: true, prev_kv: true });
    assert.equal(p2.header.revision, '3');
    assert.deepEqual(row(p2.prev_kv), ['k', 2, 2, 1, 'v1', '1234']);
    assert.deepEqual(await get('k'), [['k', 2, 3, 2, 'v2', '1234']]);

    // ignore_value without ignore_lease: the value stays, the lease becomes the request's (none).
    const p3 = await put({ key: B('k'), ignore_value: true, prev_kv: true });
    assert.equal(p3.header.revision, '4');
    assert.deepEqual(row(p3.prev_kv), ['k', 2, 3, 2, 'v2', '1234']);
    assert.deepEqual(await get('k'), [['k', 2, 4, 3, 'v2', '0']]);

    const p4 = await put({ key: B('k'), ignore_value: true, lease: 1234 });
    assert.equal(p4.header.revision, '5');
    assert.deepEqual(await get('k'), [['k', 2, 5, 4, 'v2', '1234']]);

    // Both flags: a pure "touch" that bumps mod_revision and version only.
    const p5 = await put({ key: B('k'), ignore_value: true, ignore_lease: true, prev_kv: true });
    assert.equal(p5.header.revision, '6');
    assert.deepEqual(row(p5.prev_kv), ['k', 2, 5, 4, 'v2', '1234']);
    assert.deepEqual(await get('k'), [['k', 2, 6, 5, 'v2', '1234']]);

    const p6 = await put({ key: B('k'), value: B('v3') });
    assert.equal(p6.prev_kv, null, 'prev_kv only when asked');
    assert.deepEqual(await get('k'), [['k', 2, 7, 6, 'v3', '0']]);
  });

  it('prev_kv on a new key is absent; an empty value is a value', async () => {
    const p = await put({ key: B('new'), value: B(''), prev_kv: true });
    assert.equal(p.header.revision, '8');
    assert.equal(p.prev_kv, null);
    assert.deepEqual(await get('new'), [['new', 8, 8, 1, '', '0']]);
  });

  it('the etcd3 client puts with a lease, ignores the lease and reads the previous value', async () => {
    await s.etcd.put('e').value('1').lease(1234);
    await s.etcd.put('e').value('2').ignoreLease();
    const kv = (await s.etcd.get('e').exec()).kvs[0]!;
    assert.equal(kv.lease, '1234');
    assert.equal(kv.value.toString(), '2');
    const prev = await s.etcd.put('e').value('3').getPrevious();
    assert.equal(prev.value.toString(), '2');
    assert.equal(prev.lease, '1234');
    const touched = await s.etcd.put('e').touch();
    assert.equal(touched.header.revision, '12');
    assert.equal(await s.etcd.get('e').string(), '3');
  });
});

describe('DeleteRange', () => {
  let s: KvTarget;
  const del = (req: object): Promise<any> => s.raw.call('KV', 'DeleteRange', req);
  const names = async (): Promise<string[]> =>
    (await s.raw.call('KV', 'Range', { key: B('\0'), range_end: B('\0'), keys_only: true })).kvs.map((kv: any) => kv.key.toString('latin1'));
  before(async () => {
    s = await openTarget();
    for (const k of ['a', 'a/1', 'a/2', 'b', 'c', 'c/1', 'd', 'e']) await s.raw.call('KV', 'Put', { key: B(k), value: B(`v${k}`) });
  });
  after(() => s?.stop());

  it('deletes one key, with prev_kv', async () => {
    const r = await del({ key: B('b'), prev_kv: true });
    assert.equal(r.deleted, '1');
    assert.equal(r.header.revision, '10');
    assert.deepEqual(r.prev_kvs.map(row), [['b', 5, 5, 1, 'vb', '0']]);
    assert.deepEqual(await names(), ['a', 'a/1', 'a/2', 'c', 'c/1', 'd', 'e']);
  });

  it('deletes a prefix in one revision and returns the previous values in key order', async () => {
    const r = await del({ key: B('a/'), range_end: B('a0'), prev_kv: true });
    assert.equal(r.deleted, '2');
    assert.equal(r.header.revision, '11');
    assert.deepEqual(r.prev_kvs.map(row), [['a/1', 3, 3, 1, 'va/1', '0'], ['a/2', 4, 4, 1, 'va/2', '0']]);
    assert.deepEqual(await names(), ['a', 'c', 'c/1', 'd', 'e']);
  });

  it('deletes a [key, range_end) interval without prev_kv', async () => {
    const r = await del({ key: B('c'), range_end: B('d') });
    assert.equal(r.deleted, '2');
    assert.deepEqual(r.prev_kvs, []);
    assert.equal(r.header.revision, '12');
  });

  it('deletes everything from a key with range_end "\\0"', async () => {
    const r = await del({ key: B('d'), range_end: B('\0') });
    assert.equal(r.deleted, '2');
    assert.equal(r.header.revision, '13');
    assert.deepEqual(await names(), ['a']);
  });

  it('a range_end below the key deletes nothing and keeps the revision', async () => {
    const r = await del({ key: B('z'), range_end: B('a') });
    assert.equal(r.deleted, '0');
    assert.equal(r.header.revision, '13');
  });

  it('an empty key is "key is not provided"', async () => {
    await expectGrpcError(del({ key: B('') }), INVALID, 'etcdserver: key is not provided');
    await expectGrpcError(del({ key: B(''), range_end: B('\0') }), INVALID, 'etcdserver: key is not provided');
  });

  it('the etcd3 client deletes all keys with the previous values', async () => {
    await s.etcd.put('p/1').value('x');
    await s.etcd.put('p/2').value('y');
    const prev = await s.etcd.delete().prefix('p/').getPrevious();
    assert.deepEqual(prev.map((kv) => [kv.key.toString(), kv.value.toString()]), [['p/1', 'x'], ['p/2', 'y']]);
    const all = await s.etcd.delete().all().exec();
    assert.equal(all.deleted, '1');
    assert.equal(all.header.revision, '17');
    assert.equal(await s.etcd.getAll().count(), 0);
  });
});

/**
 * The raft entry etcd measures against --max-request-bytes (etcdserver/v3_server.go
 * processInternalRaftRequestOnce: len(InternalRaftRequest.Marshal()) > MaxRequestBytes), encoded
 * by protobufjs from etcd's message layout (test/fixtures/raft_internal.proto). The request ID
 * comes from etcd's idutil.Generator: the member ID's low 16 bits, then the low 40 bits of the
 * Unix time in milliseconds, then an 8-bit counter.
 */
const raftEntry = (() => {
  const def = protoLoader.loadSync(path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'raft_internal.proto'), LOADER_OPTIONS);
  const m = (def['pgetcdtest.Raft'] as protoLoader.ServiceDefinition).Entry!;
  return (memberId: string, put: object): number => {
    const id = (BigInt.asUintN(16, BigInt(memberId)) << 48n) | (BigInt.asUintN(40, BigInt(Date.now())) << 8n) | 1n;
    return m.requestSerialize({ header: { ID: id.toString() }, put }).length;
  };
})();

describe('request size (default --max-request-bytes 1.5 MiB)', () => {
  let s: KvTarget;
  const MAX = 1.5 * 1024 * 1024;
  before(async () => { s = await openTarget(); });
  after(() => s?.stop());

  it('a 1 MiB value is written and read back intact', async () => {
    const value = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < value.length; i++) value[i] = (i * 31) & 0xff;
    await s.raw.call('KV', 'Put', { key: B('big'), value });
    const r = await s.raw.call('KV', 'Range', { key: B('big') });
    assert.ok(Buffer.compare(r.kvs[0].value, value) === 0);
    assert.ok(Buffer.compare((await s.etcd.get('big').buffer())!, value) === 0);
  });

  it('a Put whose raft entry exceeds 1.5 MiB is INVALID_ARGUMENT "request is too large", one byte less passes', async () => {
    const r = await s.raw.call('KV', 'Range', { key: B('big') });
    const memberId: string = r.header.member_id;
    // Largest value whose raft entry still fits, for key "big2" (etcd's DefaultMaxRequestBytes).
    // Binary search (the entry size grows with the value): n fits, n + 1 does not.
    const big = Buffer.alloc(MAX);
    const fits = (len: number): boolean => raftEntry(memberId, { key: B('big2'), value: big.subarray(0, len) }) <= MAX;
    let n = MAX - 100;
    let hi = MAX;
    assert.ok(fits(n) && !fits(hi));
    while (hi - n > 1) {
      const mid = (n + hi) >>> 1;
      if (fits(mid)) n = mid;
      else hi = mid;
    }
    // Measured on etcd 3.4 with such a member ID: a 10-byte request ID, value MAX - 28 the largest.
    if (BigInt.asUintN(16, BigInt(memberId)) >= 0x8000n) assert.equal(n, MAX - 28);
    await expectGrpcError(s.raw.call('KV', 'Put', { key: B('big2'), value: Buffer.alloc(n + 1, 120) }), INVALID, TOO_LARGE);
    await expectGrpcError(s.raw.call('KV', 'Put', { key: B('big2'), value: Buffer.alloc(MAX, 120) }), INVALID, TOO_LARGE);
    const ok = await s.raw.call('KV', 'Put', { key: B('big2'), value: Buffer.alloc(n, 120) });
    assert.equal(ok.header.revision, '3');
  });

  it('request checks come before the size check', async () => {
    await expectGrpcError(s.raw.call('KV', 'Put', { key: B(''), value: Buffer.alloc(MAX, 1) }), INVALID, 'etcdserver: key is not provided');
  });

  it('a write txn over the limit is too large; a read-only txn and a Range are not limited', async () => {
    const half = Buffer.alloc(800 * 1024, 1);
    await expectGrpcError(s.raw.call('KV', 'Txn', {
      success: [{ request_put: { key: B('t1'), value: half } }, { request_put: { key: B('t2'), value: half } }],
    }), INVALID, TOO_LARGE);
    const hugeKey = Buffer.alloc(1.7 * 1024 * 1024, 97);
    const cmp = await s.raw.call('KV', 'Txn', { compare: [{ key: hugeKey, target: 0, result: 0, version: 0 }] });
    assert.equal(cmp.succeeded, true);
    const ro = await s.raw.call('KV', 'Txn', { success: [{ request_range: { key: hugeKey } }] });
    assert.deepEqual(ro.responses[0].response_range.kvs, []);
    const rr = await s.raw.call('KV', 'Range', { key: hugeKey });
    assert.equal(rr.count, '0');
    await expectGrpcError(s.raw.call('KV', 'DeleteRange', { key: hugeKey }), INVALID, TOO_LARGE);
  });

  it('a message over max-request-bytes + 512 KiB is refused by gRPC with RESOURCE_EXHAUSTED', async () => {
    // etcd's text is grpc-go's ("grpc: received message larger than max (...)"); the code is what clients act on.
    await assert.rejects(s.raw.call('KV', 'Put', { key: B('big3'), value: Buffer.alloc(2 * 1024 * 1024, 1) }),
      (e: grpc.ServiceError) => e.code === grpc.status.RESOURCE_EXHAUSTED && /larger than max \(2097163 vs\.? 2097152\)/.test(e.details));
  });
});

describe('request size with --max-request-bytes 1024', () => {
  let s: KvTarget;
  before(async () => { s = await openTarget({ maxRequestBytes: 1024 }); });
  after(() => s?.stop());

  it('limits Put, DeleteRange and write txns to the configured size', async () => {
    assert.equal((await s.raw.call('KV', 'Put', { key: B('k'), value: Buffer.alloc(900, 1) })).header.revision, '2');
    await expectGrpcError(s.raw.call('KV', 'Put', { key: B('k'), value: Buffer.alloc(1010, 1) }), INVALID, TOO_LARGE);
    await expectGrpcError(s.raw.call('KV', 'DeleteRange', { key: Buffer.alloc(1100, 97) }), INVALID, TOO_LARGE);
    await expectGrpcError(s.raw.call('KV', 'Txn', { success: [{ request_put: { key: B('k'), value: Buffer.alloc(1010, 1) } }] }), INVALID, TOO_LARGE);
    const ro = await s.raw.call('KV', 'Txn', { success: [{ request_range: { key: Buffer.alloc(4000, 97) } }] });
    assert.equal(ro.succeeded, true);
    const r = await s.raw.call('KV', 'Range', { key: B('k') });
    assert.equal(r.kvs[0].value.length, 900);
    assert.equal(r.header.revision, '2');
  });
});

describe('long keys', { skip: againstEtcd() && 'a pgetcd limit' }, () => {
  let s: KvTarget;
  before(async () => { s = await openTarget(); });
  after(() => s?.stop());

  it('keys up to 2048 bytes work; longer ones are "request is too large", never a retryable error', async () => {
    const rnd = (n: number): Buffer => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = (i * 7919 + 13) % 251; return b; };
    const k = rnd(2048);
    assert.equal((await s.raw.call('KV', 'Put', { key: k, value: B('v') })).header.revision, '2');
    assert.equal((await s.raw.call('KV', 'Range', { key: k })).kvs[0].key.length, 2048);
    await expectGrpcError(s.raw.call('KV', 'Put', { key: rnd(2049), value: B('v') }), INVALID, TOO_LARGE);
    await expectGrpcError(s.raw.call('KV', 'Put', { key: rnd(100_000), value: B('v') }), INVALID, TOO_LARGE);
    await expectGrpcError(s.raw.call('KV', 'Txn', { success: [{ request_put: { key: rnd(3000), value: B('v') } }] }), INVALID, TOO_LARGE);
    // Reads and deletes of long keys are fine.
    assert.equal((await s.raw.call('KV', 'Range', { key: rnd(3000) })).count, '0');
    assert.equal((await s.raw.call('KV', 'DeleteRange', { key: rnd(3000) })).deleted, '0');
    assert.equal((await s.raw.call('KV', 'Range', { key: B('\0'), range_end: B('\0'), count_only: true })).header.revision, '2');
  });
});
