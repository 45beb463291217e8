/**
 * etcd's backend quota and alarms on two instances sharing one database: a write that finds the
 * database past --quota-backend-bytes raises NOSPACE and is refused with etcd's "database space
 * exceeded"; every instance then refuses whatever adds data (puts, txns with a put, lease
 * grants) and serves the rest; /health, Status and the metrics say so; etcd's runbook (delete,
 * compact, defrag, disarm) brings writes back. CORRUPT refuses every write everywhere.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createTestDatabase, sqlFor } from './helpers/db.ts';
import { expectGrpcError, rawClients, type Raw } from './helpers/raw.ts';
import { startServer, type TestServer } from './helpers/server.ts';
import { waitFor } from './helpers/wait.ts';

const B = (s: string): Buffer => Buffer.from(s);
const NOSPACE = 'etcdserver: mvcc: database space exceeded';
const QUOTA_HEADROOM = 4 * 1024 * 1024;

describe('--quota-backend-bytes and alarms, two instances', () => {
  let a: TestServer;
  let b: TestServer;
  let rawA: Raw;
  let rawB: Raw;
  let quota = 0;

  before(async () => {
    const databaseUrl = await createTestDatabase();
    // The schema's own size first (a server with no quota creates it), then the quota above it.
    const first = await startServer({ databaseUrl, quotaBackendBytes: -1 });
    const r0 = rawClients(first.endpoint);
    try {
      const s = await r0.call('Maintenance', 'Status', {});
      assert.equal(s.dbSizeQuota, '-1', 'a negative quota is reported as configured (etcd: no quota)');
      quota = Number(s.dbSize) + QUOTA_HEADROOM;
    } finally {
      r0.close();
      await first.stop();
    }
    a = await startServer({ databaseUrl, quotaBackendBytes: quota, name: 'a' });
    b = await startServer({ databaseUrl, quotaBackendBytes: quota, name: 'b' });
    rawA = rawClients(a.endpoint);
    rawB = rawClients(b.endpoint);
  });
  after(async () => {
    rawA?.close();
    rawB?.close();
    await b?.stop();
    await a?.stop();
  });

  const http = async (s: TestServer, path: string): Promise<{ status: number; body: string }> => {
    const r = await fetch(`http://${s.endpoint}${path}`);
    return { status: r.status, body: await r.text() };
  };

  it('the write that finds the database full raises NOSPACE in its member\'s name and gets etcd\'s error', async () => {
    const s = await rawA.call('Maintenance', 'Status', {});
    assert.equal(s.dbSizeQuota, String(quota));
    let written = 0;
    let refused: grpc.ServiceError | undefined;
    // Incompressible 64 KiB values: TOAST cannot shrink them, so the tables grow past the quota.
    for (let i = 0; i < 600 && !refused; i++) {
      try {
        await rawA.call('KV', 'Put', { key: B(`/big/${i}`), value: randomBytes(64 * 1024) });
        written++;
      } catch (err) {
        refused = err as grpc.ServiceError;
      }
    }
    assert.ok(refused, `no put was refused after ${written} of 64 KiB`);
    assert.equal(refused.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(refused.details, NOSPACE);
    assert.ok(written * 64 * 1024 >= QUOTA_HEADROOM / 2, `refused after only ${written} puts`);
    const alarms = await rawA.call('Maintenance', 'Alarm', { action: 0, alarm: 0 });
    assert.deepEqual(alarms.alarms, [{ memberID: (await rawA.call('Maintenance', 'Status', {})).header.member_id, alarm: 1 }]);
    const status = await rawB.call('Maintenance', 'Status', {});
    assert.ok(Number(status.dbSize) >= quota - 64 * 1024 - 256, `dbSize ${status.dbSize} vs quota ${quota}`);
  });

  it('every instance then refuses what adds data and serves the rest', async () => {
    for (const raw of [rawB, rawA]) {
      // B learns of the alarm by a notification.
      await waitFor('NOSPACE to refuse puts', async () => {
        try {
          await raw.call('KV', 'Put', { key: B('/small'), value: B('x') });
          return undefined;
        } catch (err) {
          return (err as grpc.ServiceError).details === NOSPACE ? true : undefined;
        }
      }, 10_000, 50);
      await expectGrpcError(raw.call('KV', 'Put', { key: B('/small'), value: B('') }), grpc.status.RESOURCE_EXHAUSTED, NOSPACE);
      await expectGrpcError(raw.call('Lease', 'LeaseGrant', { TTL: 60 }), grpc.status.RESOURCE_EXHAUSTED, NOSPACE);
      // A txn with a put in either branch costs space, whichever branch would run.
      await expectGrpcError(raw.call('KV', 'Txn', {
        compare: [], success: [{ request_range: { key: B('/big/0') } }], failure: [{ request_put: { key: B('/small'), value: B('x') } }],
      }), grpc.status.RESOURCE_EXHAUSTED, NOSPACE);
      await expectGrpcError(raw.call('KV', 'Txn', {
        compare: [], success: [{ request_txn: { compare: [], success: [{ request_put: { key: B('/small'), value: B('x') } }], failure: [] } }], failure: [],
      }), grpc.status.RESOURCE_EXHAUSTED, NOSPACE);
      // Reads, deletes and txns of reads and deletes run.
      const r = await raw.call('KV', 'Range', { key: B('/big/0') });
      assert.equal(r.kvs[0].value.length, 64 * 1024);
      const t = await raw.call('KV', 'Txn', { compare: [], success: [{ request_range: { key: B('/big/1') } }, { request_delete_range: { key: B('/nothing') } }], failure: [] });
      assert.equal(t.succeeded, true);
    }
    const h = await http(a, '/health');
    assert.equal(h.status, 503);
    assert.equal(JSON.parse(h.body).reason, 'ALARM NOSPACE');
    assert.equal((await http(b, '/health?exclude=NOSPACE')).status, 200);
    const metrics = (await http(a, '/metrics')).body;
    assert.match(metrics, /^etcd_debugging_server_alarms\{server_id="[0-9a-f]+",alarm_type="NOSPACE"\} 1$/m);
    assert.match(metrics, new RegExp(`^etcd_server_quota_backend_bytes ${quota}$`, 'm'));
    assert.match(metrics, /^etcd_server_health_failures [1-9]/m);
  });

  it("no pgetcd session of either instance holds back VACUUM's horizon (a snapshot older than a second)", async () => {
    const sql = sqlFor(a.databaseUrl);
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const held = await sql`SELECT application_name, state, left(query, 60) AS query FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL
          AND application_name LIKE 'pgetcd%' AND now() - COALESCE(xact_start, query_start) > interval '1 second'`;
      assert.deepEqual([...held], [], 'sessions holding a snapshot');
    } finally {
      await sql.end();
    }
  });

  it("etcd's runbook brings writes back: delete, compact, defrag (tables rewritten past the quota), disarm", async () => {
    const del = await rawB.call('KV', 'DeleteRange', { key: B('/big/'), range_end: B('/big0') });
    assert.ok(Number(del.deleted) > 0);
    await rawB.call('KV', 'Compact', { revision: del.header.revision, physical: true });
    await rawA.call('Maintenance', 'Defragment', {});
    const s = await rawA.call('Maintenance', 'Status', {});
    assert.ok(Number(s.dbSize) < quota - QUOTA_HEADROOM / 2, `defragment gave the space back: dbSize ${s.dbSize}, quota ${quota}`);
    // Still refused until disarmed, as in etcd.
    await expectGrpcError(rawA.call('KV', 'Put', { key: B('/small'), value: B('x') }), grpc.status.RESOURCE_EXHAUSTED, NOSPACE);
    const list = await rawB.call('Maintenance', 'Alarm', { action: 0, alarm: 0 });
    for (const m of list.alarms) await rawB.call('Maintenance', 'Alarm', { action: 2, memberID: m.memberID, alarm: m.alarm });
    assert.deepEqual((await rawA.call('Maintenance', 'Alarm', { action: 0, alarm: 0 })).alarms, []);
    for (const raw of [rawB, rawA]) {
      await waitFor('puts to be accepted again', async () => {
        try {
          await raw.call('KV', 'Put', { key: B('/small'), value: B('back') });
          return true;
        } catch {
          return undefined;
        }
      }, 10_000, 50);
      await raw.call('Lease', 'LeaseGrant', { TTL: 60 });
    }
    assert.equal((await http(a, '/health')).status, 200);
  });

  it('CORRUPT, raised through the API on one instance, refuses every write on both until cleared; reads go on (etcd serves them outside its applier)', async () => {
    const memberB = (await rawB.call('Maintenance', 'Status', {})).header.member_id;
    await rawB.call('Maintenance', 'Alarm', { action: 1, memberID: memberB, alarm: 2 });
    const corrupt = 'etcdserver: corrupt cluster';
    await waitFor('CORRUPT to reach instance a', async () => {
      try {
        await rawA.call('KV', 'DeleteRange', { key: B('/nothing') });
        return undefined;
      } catch (err) {
        return (err as grpc.ServiceError).code === grpc.status.DATA_LOSS ? true : undefined;
      }
    }, 10_000, 50);
    for (const raw of [rawA, rawB]) {
      await expectGrpcError(raw.call('KV', 'DeleteRange', { key: B('/small') }), grpc.status.DATA_LOSS, corrupt);
      await expectGrpcError(raw.call('KV', 'Put', { key: B('/small'), value: B('x') }), grpc.status.DATA_LOSS, corrupt);
      await expectGrpcError(raw.call('KV', 'Txn', { compare: [], success: [{ request_delete_range: { key: B('/small') } }], failure: [] }), grpc.status.DATA_LOSS, corrupt);
      await expectGrpcError(raw.call('KV', 'Compact', { revision: 1 }), grpc.status.DATA_LOSS, corrupt);
      await expectGrpcError(raw.call('Lease', 'LeaseGrant', { TTL: 60 }), grpc.status.DATA_LOSS, corrupt);
      assert.equal((await raw.call('KV', 'Range', { key: B('/small') })).kvs[0].value.toString(), 'back');
      const t = await raw.call('KV', 'Txn', { compare: [], success: [{ request_range: { key: B('/small') } }], failure: [] });
      assert.equal(t.responses[0].response_range.kvs[0].value.toString(), 'back');
    }
    assert.equal(JSON.parse((await http(a, '/health')).body).reason, 'ALARM CORRUPT');
    await rawA.call('Maintenance', 'Alarm', { action: 2, memberID: memberB, alarm: 2 });
    await waitFor('writes on instance b again', async () => {
      try {
        await rawB.call('KV', 'Put', { key: B('/small'), value: B('again') });
        return true;
      } catch {
        return undefined;
      }
    }, 10_000, 50);
  });
});
