import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import type postgres from 'postgres';
import { sqlFor } from './helpers/db.ts';
import { expectGrpcError, rawClients, type Raw } from './helpers/raw.ts';
import { startServer, type TestServer } from './helpers/server.ts';
import { waitFor } from './helpers/wait.ts';

/** Polls until `f` returns a value other than undefined. */

/** A raw LeaseKeepAlive stream: send an ID, get the next response. */
function keepAliveStream(raw: Raw): { send(id: string): Promise<any>; end(): Promise<grpc.StatusObject> } {
  const call = (raw.Lease as any).LeaseKeepAlive() as grpc.ClientDuplexStream<object, any>;
  const queue: any[] = [];
  const waiters: Array<(v: any) => void> = [];
  call.on('data', (d) => {
    const w = waiters.shift();
    if (w) w(d);
    else queue.push(d);
  });
  call.on('error', () => undefined);
  const status = once(call, 'status') as Promise<[grpc.StatusObject]>;
  return {
    send(id) {
      call.write({ ID: id });
      const q = queue.shift();
      return q ? Promise.resolve(q) : new Promise((r) => waiters.push(r));
    },
    async end() {
      call.end();
      return (await status)[0];
    },
  };
}

describe('Lease service', () => {
  let srv: TestServer;
  let raw: Raw;
  let etcd: Etcd3;
  let sql: postgres.Sql;
  const rev = async (): Promise<number> => Number((await raw.call('KV', 'Range', { key: Buffer.from('\0') })).header.revision);
  const put = (key: string, lease: string) => raw.call('KV', 'Put', { key: Buffer.from(key), value: Buffer.from('v'), lease });
  const count = async (prefix: string): Promise<number> =>
    Number((await raw.call('KV', 'Range', { key: Buffer.from(prefix), range_end: Buffer.from(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)), count_only: true })).count);

  before(async () => {
    srv = await startServer();
    raw = rawClients(srv.endpoint);
    etcd = new Etcd3({ hosts: srv.endpoint });
    sql = sqlFor(srv.databaseUrl);
  });
  after(async () => {
    etcd.close();
    raw.close();
    await sql.end();
    await srv.stop();
  });

  describe('LeaseGrant', () => {
    it('chooses distinct positive int63 IDs, echoes the TTL, and writes no revision', async () => {
      const before = await rev();
      const t0 = Date.now();
      const rs = await Promise.all(Array.from({ length: 20 }, () => raw.call('Lease', 'LeaseGrant', { TTL: '30' })));
      const ids = new Set(rs.map((r) => r.ID));
      assert.equal(ids.size, 20);
      for (const r of rs) {
        const id = BigInt(r.ID);
        assert.ok(id > 0n && id < 2n ** 63n, `ID ${r.ID} is a positive int63`);
        assert.equal(r.TTL, '30');
        assert.equal(r.error, '');
        assert.equal(Number(r.header.revision), before);
        assert.notEqual(r.header.member_id, '0');
      }
      assert.equal(await rev(), before);
      // Persisted in PostgreSQL with the granted TTL and an expiry about TTL seconds ahead.
      const rows = await sql`SELECT id::text AS id, ttl::int AS ttl, extract(epoch FROM expires_at - now())::float8 AS left FROM leases WHERE id = ANY(${[...ids]}::int8[])`;
      // Granted after t0 with 30 s: at most 30 s left, and no less than 30 s minus the time since t0.
      const elapsed = (Date.now() - t0) / 1000;
      assert.equal(rows.length, 20);
      for (const r of rows) {
        assert.equal(r.ttl, 30);
        assert.ok(r.left > 30 - elapsed - 0.05 && r.left <= 30, `expires in ${r.left}s (${elapsed}s since the grants)`);
      }
    });

    it("raises a TTL below etcd's 2 s minimum and rejects one above MaxLeaseTTL", async () => {
      for (const ttl of ['0', '1', '-100']) {
        const r = await raw.call('Lease', 'LeaseGrant', { TTL: ttl });
        assert.equal(r.TTL, '2', `TTL ${ttl} is raised to 2`);
      }
      const max = await raw.call('Lease', 'LeaseGrant', { TTL: '9000000000' });
      assert.equal(max.TTL, '9000000000');
      await expectGrpcError(raw.call('Lease', 'LeaseGrant', { TTL: '9000000001' }), grpc.status.OUT_OF_RANGE, 'etcdserver: too large lease TTL');
      // etcd checks the TTL before the ID: a duplicate with a too large TTL is "too large".
      await expectGrpcError(raw.call('Lease', 'LeaseGrant', { ID: max.ID, TTL: '9000000001' }), grpc.status.OUT_OF_RANGE, 'etcdserver: too large lease TTL');
    });

    it('accepts client-chosen IDs, negative ones too, and refuses a duplicate', async () => {
      const r = await raw.call('Lease', 'LeaseGrant', { ID: '-4242', TTL: '60' });
      assert.equal(r.ID, '-4242');
      await expectGrpcError(raw.call('Lease', 'LeaseGrant', { ID: '-4242', TTL: '60' }), grpc.status.FAILED_PRECONDITION, 'etcdserver: lease already exists');
      const big = await raw.call('Lease', 'LeaseGrant', { ID: '9223372036854775807', TTL: '60' });
      assert.equal(big.ID, '9223372036854775807');
      await put('/neg/k', '-4242');
      const got = await raw.call('KV', 'Range', { key: Buffer.from('/neg/k') });
      assert.equal(got.kvs[0].lease, '-4242');
      await raw.call('Lease', 'LeaseRevoke', { ID: '-4242' });
      assert.equal(await count('/neg/'), 0);
    });
  });

  describe('LeaseRevoke', () => {
    it("deletes the lease's keys in one revision, in key order", async () => {
      const g = await raw.call('Lease', 'LeaseGrant', { TTL: '60' });
      for (const k of ['/rv/c', '/rv/a', '/rv/b']) await put(k, g.ID);
      await put('/rv/other', '0');
      const before = await rev();
      const r = await raw.call('Lease', 'LeaseRevoke', { ID: g.ID });
      assert.equal(Number(r.header.revision), before + 1);
      assert.equal(await count('/rv/'), 1);
      const rows = await sql`SELECT convert_from(key, 'UTF8') AS key, sub, deleted FROM kv_log WHERE mod_revision = ${before + 1} ORDER BY sub`;
      assert.deepEqual(rows.map((x) => [x.key, x.sub, x.deleted]), [['/rv/a', 0, true], ['/rv/b', 1, true], ['/rv/c', 2, true]]);
      assert.equal((await sql`SELECT count(*)::int AS n FROM leases WHERE id = ${g.ID}::int8`)[0]!.n, 0);
    });

    it('uses no revision for a lease without keys, and refuses an unknown lease', async () => {
      const g = await raw.call('Lease', 'LeaseGrant', { TTL: '60' });
      const before = await rev();
      const r = await raw.call('Lease', 'LeaseRevoke', { ID: g.ID });
      assert.equal(Number(r.header.revision), before);
      await expectGrpcError(raw.call('Lease', 'LeaseRevoke', { ID: g.ID }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
      await expectGrpcError(raw.call('Lease', 'LeaseRevoke', { ID: '0' }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
    });

    it('makes a later Put on the lease fail with "requested lease not found"', async () => {
      const g = await raw.call('Lease', 'LeaseGrant', { TTL: '60' });
      await raw.call('Lease', 'LeaseRevoke', { ID: g.ID });
      await expectGrpcError(put('/rv2/x', g.ID), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
    });
  });

  describe('LeaseTimeToLive and LeaseLeases', () => {
    it('reports remaining and granted TTL, and the keys in key order when asked', async () => {
      const g = await raw.call('Lease', 'LeaseGrant', { TTL: '100' });
      for (const k of ['/ttl/b', '/ttl/a']) await put(k, g.ID);
      const r = await raw.call('Lease', 'LeaseTimeToLive', { ID: g.ID, keys: true });
      assert.equal(r.ID, g.ID);
      assert.equal(r.grantedTTL, '100');
      // etcd truncates the remaining seconds: just granted, 100 s shows as 99.
      assert.ok(Number(r.TTL) === 99 || Number(r.TTL) === 98, `TTL ${r.TTL}`);
      assert.deepEqual(r.keys.map((k: Buffer) => k.toString()), ['/ttl/a', '/ttl/b']);
      assert.equal(Number(r.header.revision), await rev());
      const noKeys = await raw.call('Lease', 'LeaseTimeToLive', { ID: g.ID, keys: false });
      assert.deepEqual(noKeys.keys, []);
      await raw.call('Lease', 'LeaseRevoke', { ID: g.ID });
    });

    it('answers TTL -1 (not an error) for an unknown lease, like etcd 3.5', async () => {
      const r = await raw.call('Lease', 'LeaseTimeToLive', { ID: '123456789', keys: true });
      assert.equal(r.ID, '123456789');
      assert.equal(r.TTL, '-1');
      assert.equal(r.grantedTTL, '0');
      assert.deepEqual(r.keys, []);
      assert.equal(Number(r.header.revision), await rev());
    });

    it('lists every lease, soonest expiry first', async () => {
      const long = await raw.call('Lease', 'LeaseGrant', { TTL: '500' });
      const short = await raw.call('Lease', 'LeaseGrant', { TTL: '400' });
      const r = await raw.call('Lease', 'LeaseLeases', {});
      const ids = r.leases.map((l: { ID: string }) => l.ID);
      assert.ok(ids.includes(long.ID) && ids.includes(short.ID));
      assert.ok(ids.indexOf(short.ID) < ids.indexOf(long.ID));
      assert.equal(Number(r.header.revision), await rev());
      await raw.call('Lease', 'LeaseRevoke', { ID: long.ID });
      await raw.call('Lease', 'LeaseRevoke', { ID: short.ID });
      const after = await raw.call('Lease', 'LeaseLeases', {});
      assert.ok(!after.leases.some((l: { ID: string }) => l.ID === long.ID || l.ID === short.ID));
    });
  });

  describe('LeaseKeepAlive', () => {
    it('renews: answers the ID, the granted TTL and a header; TTL 0 for an unknown lease', async () => {
      const g = await raw.call('Lease', 'LeaseGrant', { TTL: '20' });
      await new Promise((r) => setTimeout(r, 1100));
      const before = await raw.call('Lease', 'LeaseTimeToLive', { ID: g.ID });
      assert.ok(Number(before.TTL) <= 18, `TTL ${before.TTL} went down`);
      const s = keepAliveStream(raw);
      const sent = Date.now();
      const r = await s.send(g.ID);
      assert.equal(r.ID, g.ID);
      assert.equal(r.TTL, '20');
      assert.equal(Number(r.header.revision), await rev());
      assert.equal(r.header.cluster_id, before.header.cluster_id);
      const renewed = await raw.call('Lease', 'LeaseTimeToLive', { ID: g.ID });
      // Renewed to 20 s between `sent` and now; etcd reports whole seconds left, rounded down.
      const since = Math.ceil((Date.now() - sent) / 1000);
      assert.ok(Number(renewed.TTL) <= 19 && Number(renewed.TTL) >= 20 - since, `TTL ${renewed.TTL} ${since} s after the renewal`);
      const unknown = await s.send('777777');
      assert.deepEqual([unknown.ID, unknown.TTL], ['777777', '0']);
      await raw.call('Lease', 'LeaseRevoke', { ID: g.ID });
      const revoked = await s.send(g.ID);
      assert.deepEqual([revoked.ID, revoked.TTL], [g.ID, '0']);
      const st = await s.end();
      assert.equal(st.code, grpc.status.OK);
    });

    it('answers many leases on one stream (as Go clientv3 multiplexes them)', async () => {
      const gs = await Promise.all(Array.from({ length: 50 }, (_, i) => raw.call('Lease', 'LeaseGrant', { TTL: String(10 + i) })));
      const s = keepAliveStream(raw);
      const rs = await Promise.all(gs.map((g) => s.send(g.ID)));
      const byId = new Map(rs.map((r) => [r.ID, r.TTL]));
      for (const g of gs) assert.equal(byId.get(g.ID), g.TTL);
      await s.end();
      await Promise.all(gs.map((g) => raw.call('Lease', 'LeaseRevoke', { ID: g.ID })));
    });
  });

  describe('expiry', () => {
    it('deletes the keys of a lease that is not kept alive, and keeps one that is', async () => {
      const t0 = Date.now();
      const dead = await raw.call('Lease', 'LeaseGrant', { TTL: '2' });
      const alive = await raw.call('Lease', 'LeaseGrant', { TTL: '2' });
      await put('/exp/dead/1', dead.ID);
      await put('/exp/dead/2', dead.ID);
      await put('/exp/alive/1', alive.ID);
      const s = keepAliveStream(raw);
      const timer = setInterval(() => void s.send(alive.ID), 500);
      try {
        // The upper bound is waitFor's: expiry is prompt when the machine is, but not guaranteed to be.
        await waitFor('expiry', async () => ((await count('/exp/dead/')) === 0 ? true : undefined), 20_000);
        const took = Date.now() - t0;
        assert.ok(took >= 1990, `expired ${took} ms after the grant (TTL 2 s): never early`);
        const ttl = await raw.call('Lease', 'LeaseTimeToLive', { ID: dead.ID });
        assert.equal(ttl.TTL, '-1');
        const ka = await s.send(dead.ID);
        assert.equal(ka.TTL, '0');
        await new Promise((r) => setTimeout(r, 1500));
        assert.equal(await count('/exp/alive/'), 1, 'the kept-alive lease outlives its TTL');
      } finally {
        clearInterval(timer);
        await s.end();
      }
      await raw.call('Lease', 'LeaseRevoke', { ID: alive.ID });
    });
  });

  describe('through the etcd3 client', () => {
    it('grants, puts with the lease, keeps it alive past its TTL, and revokes', async () => {
      const lease = etcd.lease(2);
      const id = await lease.grant();
      await lease.put('/e3/a').value('1');
      await lease.put('/e3/b').value('2');
      const succeeded: any[] = [];
      lease.on('keepaliveSucceeded', (r) => succeeded.push(r));
      await new Promise((r) => setTimeout(r, 3000));
      assert.ok(succeeded.length >= 2, `${succeeded.length} keep-alives`);
      assert.equal(succeeded[0].TTL, '2');
      assert.equal(succeeded[0].ID, id);
      assert.equal(await etcd.get('/e3/a').string(), '1');
      const ttl = await raw.call('Lease', 'LeaseTimeToLive', { ID: id });
      assert.ok(Number(ttl.TTL) >= 0 && Number(ttl.TTL) <= 2 && ttl.grantedTTL === '2', `ttl ${ttl.TTL}`);
      await lease.revoke();
      assert.equal(await etcd.get('/e3/a').string(), null);
      assert.equal(await etcd.get('/e3/b').string(), null);
    });

    it("emits 'lost' when the lease is revoked elsewhere (keep-alive answers TTL 0)", async () => {
      const lease = etcd.lease(3);
      const id = await lease.grant();
      const lost = once(lease, 'lost');
      await raw.call('Lease', 'LeaseRevoke', { ID: id });
      const [err] = await lost;
      assert.match(String(err), /lease/i);
      lease.release();
    });

    it('keepaliveOnce and ttl for a lease without automatic keep-alive', async () => {
      const lease = etcd.lease(5, { autoKeepAlive: false });
      const id = await lease.grant();
      const r = await lease.keepaliveOnce();
      assert.equal(r.TTL, '5');
      assert.equal((await raw.call('Lease', 'LeaseTimeToLive', { ID: id })).TTL, '4');
      await lease.revoke();
    });
  });
});
