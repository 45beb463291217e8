import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { DEFAULTS, parseConfig } from '../src/config.ts';
import { expectGrpcError, rawClients, type Raw } from './helpers/raw.ts';
import { startServer, type TestServer } from './helpers/server.ts';
import { sqlFor } from './helpers/db.ts';

const execFileP = promisify(execFile);
const ETCDCTL = ['/usr/bin/etcdctl', '/usr/local/bin/etcdctl'].find((p) => existsSync(p));

describe('Maintenance and Cluster services', () => {
  let srv: TestServer;
  let raw: Raw;
  const put = (key: string, value: Buffer | string = 'v') => raw.call('KV', 'Put', { key: Buffer.from(key), value: Buffer.from(value) });

  before(async () => {
    srv = await startServer({ name: 'm1', etcdVersion: '3.5.99', advertiseClientUrls: ['http://127.0.0.1:1234'] });
    raw = rawClients(srv.endpoint);
  });
  after(async () => {
    raw.close();
    await srv.stop();
  });

  describe('Status', () => {
    it('reports the configured version, this member as leader, and indexes that follow the revision', async () => {
      const s = await raw.call('Maintenance', 'Status', {});
      assert.equal(s.version, '3.5.99');
      assert.equal(s.leader, s.header.member_id);
      assert.equal(s.raftTerm, String(s.header.raft_term));
      assert.equal(s.raftIndex, s.header.revision);
      assert.equal(s.raftAppliedIndex, s.header.revision);
      assert.equal(s.isLearner, false);
      assert.deepEqual(s.errors, []);
      await put('/st/a');
      const s2 = await raw.call('Maintenance', 'Status', {});
      assert.equal(Number(s2.raftIndex), Number(s.raftIndex) + 1);
      assert.equal(s2.header.revision, s2.raftIndex);
    });

    it('defaults to etcd 3.6.11, settable by flag or PGETCD_ETCD_VERSION; 3.7 and non-versions are refused', () => {
      assert.equal(DEFAULTS.etcdVersion, '3.6.11');
      assert.throws(() => parseConfig(['--etcd-version', '3.7.0'], {}), /implements etcd up to 3\.6/);
      assert.throws(() => parseConfig(['--etcd-version', 'latest'], {}), /not a version like 3\.6\.11/);
      const flag = parseConfig(['--etcd-version', '3.5.9'], {});
      const env = parseConfig([], { PGETCD_ETCD_VERSION: '3.5.10' });
      assert.ok(flag !== 'help' && env !== 'help');
      assert.equal(flag.etcdVersion, '3.5.9');
      assert.equal(env.etcdVersion, '3.5.10');
    });

    it("measures pgetcd's tables in PostgreSQL: dbSize grows with data, dbSizeInUse never exceeds it", async () => {
      const s = await raw.call('Maintenance', 'Status', {});
      assert.ok(Number(s.dbSize) > 0);
      assert.ok(Number(s.dbSizeInUse) > 0 && Number(s.dbSizeInUse) <= Number(s.dbSize));
      const big = Buffer.alloc(100_000, 'x');
      // Random bytes so TOAST compression cannot shrink them away.
      for (let i = 0; i < 20; i++) await put(`/st/big/${i}`, Buffer.from(big.map(() => Math.floor(Math.random() * 256))));
      const s2 = await raw.call('Maintenance', 'Status', {});
      assert.ok(Number(s2.dbSize) >= Number(s.dbSize) + 1_500_000, `dbSize ${s.dbSize} -> ${s2.dbSize}`);
    });
  });

  describe('Alarm', () => {
    it('lists, raises and clears alarms as etcd does; NOSPACE refuses puts until disarmed', async () => {
      const get = await raw.call('Maintenance', 'Alarm', { action: 0, memberID: '0', alarm: 0 });
      assert.deepEqual(get.alarms, []);
      assert.ok(Number(get.header.revision) > 0);
      const off = await raw.call('Maintenance', 'Alarm', { action: 2, memberID: '0', alarm: 1 });
      assert.deepEqual(off.alarms, [], 'clearing an alarm that is not active answers nothing');
      const none = await raw.call('Maintenance', 'Alarm', { action: 1, alarm: 0 });
      assert.deepEqual(none.alarms, [], 'raising NONE does nothing');
      const member = '18446744073709551615'; // any member ID, all 64 bits
      const on = await raw.call('Maintenance', 'Alarm', { action: 1, memberID: member, alarm: 1 });
      assert.deepEqual(on.alarms, [{ memberID: member, alarm: 1 }]);
      assert.deepEqual((await raw.call('Maintenance', 'Alarm', { action: 0, alarm: 0 })).alarms, [{ memberID: member, alarm: 1 }]);
      assert.deepEqual((await raw.call('Maintenance', 'Alarm', { action: 0, alarm: 2 })).alarms, [], 'GET of one type lists that type');
      assert.deepEqual((await raw.call('Maintenance', 'Status', {})).errors, [`memberID:${member} alarm:NOSPACE `]);
      await expectGrpcError(put('/alarm/a'), grpc.status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded');
      assert.ok((await raw.call('KV', 'Range', { key: Buffer.from('/alarm/a') })).header, 'reads still work');
      const cleared = await raw.call('Maintenance', 'Alarm', { action: 2, memberID: member, alarm: 1 });
      assert.deepEqual(cleared.alarms, [{ memberID: member, alarm: 1 }]);
      await put('/alarm/a');
      assert.deepEqual((await raw.call('Maintenance', 'Status', {})).errors, []);
    });
  });

  describe('Cluster', () => {
    it('lists this member with its name and client URLs; the header has no revision', async () => {
      const r = await raw.call('Cluster', 'MemberList', { linearizable: true });
      assert.equal(r.members.length, 1);
      const m = r.members[0];
      assert.equal(m.ID, r.header.member_id);
      assert.equal(m.name, 'm1');
      assert.deepEqual(m.clientURLs, ['http://127.0.0.1:1234']);
      assert.deepEqual(m.peerURLs, []);
      assert.equal(m.isLearner, false);
      assert.equal(r.header.revision, '0');
      assert.notEqual(r.header.cluster_id, '0');
    });

    it('answers membership changes as a one-member etcd does, or UNIMPLEMENTED', async () => {
      const self = (await raw.call('Cluster', 'MemberList', {})).header.member_id as string;
      await expectGrpcError(raw.call('Cluster', 'MemberAdd', { peerURLs: ['http://10.0.0.1:2380'] }), grpc.status.UNIMPLEMENTED,
        'pgetcd: membership follows running instances (they share state through PostgreSQL, not Raft): start another pgetcd instance on the same database to add a member');
      await expectGrpcError(raw.call('Cluster', 'MemberRemove', { ID: '12345' }), grpc.status.NOT_FOUND, 'etcdserver: member not found');
      await expectGrpcError(raw.call('Cluster', 'MemberRemove', { ID: self }), grpc.status.FAILED_PRECONDITION,
        'etcdserver: re-configuration failed due to not enough started members');
      await expectGrpcError(raw.call('Cluster', 'MemberUpdate', { ID: '12345', peerURLs: ['http://x:1'] }), grpc.status.NOT_FOUND, 'etcdserver: member not found');
      await expectGrpcError(raw.call('Cluster', 'MemberUpdate', { ID: self, peerURLs: ['http://x:1'] }), grpc.status.UNIMPLEMENTED,
        'pgetcd: membership follows running instances (they share state through PostgreSQL, not Raft): members have no peer URLs to update; client URLs come from --advertise-client-urls');
      await expectGrpcError(raw.call('Cluster', 'MemberPromote', { ID: self }), grpc.status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member');
      await expectGrpcError(raw.call('Cluster', 'MemberPromote', { ID: '12345' }), grpc.status.NOT_FOUND, 'etcdserver: member not found');
    });

    it('moves leadership only to itself', async () => {
      const self = (await raw.call('Cluster', 'MemberList', {})).header.member_id as string;
      const r = await raw.call('Maintenance', 'MoveLeader', { targetID: self });
      assert.equal(r.header, null);
      await expectGrpcError(raw.call('Maintenance', 'MoveLeader', { targetID: '12345' }), grpc.status.FAILED_PRECONDITION, 'etcdserver: bad leader transferee');
    });
  });

  describe('Hash, HashKV, Defragment, Snapshot, Downgrade', () => {
    it('HashKV hashes the history up to a revision: stable, the same on every instance, and checked like etcd', async () => {
      await put('/hk/a', '1');
      const r1 = await raw.call('Maintenance', 'HashKV', { revision: '0' });
      const rev1 = Number(r1.header.revision);
      assert.equal(r1.compact_revision, '-1', 'etcd reports -1 before any compaction');
      await put('/hk/a', '2');
      const r2 = await raw.call('Maintenance', 'HashKV', { revision: '0' });
      assert.notEqual(r2.hash, r1.hash);
      assert.equal(Number(r2.header.revision), rev1 + 1);
      const again = await raw.call('Maintenance', 'HashKV', { revision: String(rev1) });
      assert.equal(again.hash, r1.hash, 'hashing an older revision ignores later writes');
      assert.equal(Number(again.header.revision), rev1 + 1, 'the header carries the current revision, as in etcd');

      const other = await startServer({ databaseUrl: srv.databaseUrl, name: 'm2' });
      const raw2 = rawClients(other.endpoint);
      try {
        const o = await raw2.call('Maintenance', 'HashKV', { revision: String(rev1 + 1) });
        assert.equal(o.hash, r2.hash, 'another instance on the same database agrees');
      } finally {
        raw2.close();
        await other.stop();
      }

      await expectGrpcError(raw.call('Maintenance', 'HashKV', { revision: String(rev1 + 100) }), grpc.status.OUT_OF_RANGE,
        'etcdserver: mvcc: required revision is a future revision');
      await raw.call('KV', 'Compact', { revision: String(rev1), physical: true });
      await expectGrpcError(raw.call('Maintenance', 'HashKV', { revision: String(rev1 - 1) }), grpc.status.OUT_OF_RANGE,
        'etcdserver: mvcc: required revision has been compacted');
      const c = await raw.call('Maintenance', 'HashKV', { revision: '0' });
      assert.equal(c.compact_revision, String(rev1));
      const c2 = await raw.call('Maintenance', 'HashKV', { revision: '0' });
      assert.equal(c2.hash, c.hash);
    });

    it('Hash covers the whole store and changes with leases', async () => {
      const h1 = await raw.call('Maintenance', 'Hash', {});
      assert.ok(Number(h1.header.revision) > 0);
      const g = await raw.call('Lease', 'LeaseGrant', { TTL: '100' });
      const h2 = await raw.call('Maintenance', 'Hash', {});
      assert.notEqual(h2.hash, h1.hash);
      await raw.call('Lease', 'LeaseRevoke', { ID: g.ID });
      const h3 = await raw.call('Maintenance', 'Hash', {});
      assert.equal(h3.hash, h1.hash);
    });

    it('Defragment vacuums every pgetcd table (partitions included) before it answers, with no header like etcd', async () => {
      // Dead rows to reclaim: kv_current versions replaced by later puts.
      for (let i = 0; i < 20; i++) await put('/df/a', String(i));
      const sql = sqlFor(srv.databaseUrl);
      try {
        const counts = async (): Promise<Record<string, number>> => {
          const rows = await sql`SELECT relname, vacuum_count::int AS n FROM pg_stat_user_tables
            WHERE relname IN ('meta', 'compaction', 'kv_current', 'leases', 'kv_log_default', 'kv_log_pods') ORDER BY relname`;
          return Object.fromEntries(rows.map((r) => [r.relname as string, r.n as number]));
        };
        const before = await counts();
        assert.equal(Object.keys(before).length, 6);
        const r = await raw.call('Maintenance', 'Defragment', {});
        assert.equal(r.header, null);
        const after = await counts();
        for (const [t, n] of Object.entries(before)) assert.equal(after[t], n + 1, `${t} was vacuumed once`);
      } finally {
        await sql.end();
      }
    });

    it('Snapshot points to PostgreSQL backups', async () => {
      const call = (raw.Maintenance as any).Snapshot({}) as grpc.ClientReadableStream<unknown>;
      call.on('data', () => assert.fail('no snapshot data'));
      call.on('error', () => undefined);
      const st = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      assert.equal(st.code, grpc.status.UNIMPLEMENTED);
      assert.equal(st.details, 'pgetcd: snapshots are PostgreSQL backups (pg_dump/pg_basebackup)');
    });

    it('Downgrade: nothing to cancel, and validation is not supported', async () => {
      await expectGrpcError(raw.call('Maintenance', 'Downgrade', { action: 2 }), grpc.status.FAILED_PRECONDITION, 'etcdserver: no inflight downgrade job');
      await expectGrpcError(raw.call('Maintenance', 'Downgrade', { action: 0, version: '3.4' }), grpc.status.UNIMPLEMENTED,
        'pgetcd: downgrades do not apply: the reported etcd version is set with --etcd-version');
    });
  });

  describe('through etcdctl', { skip: ETCDCTL ? false : 'etcdctl is not installed' }, () => {
    /** etcdctl's output (some commands, e.g. endpoint health, print to stderr). */
    const ctl = async (...args: string[]): Promise<string> => {
      const r = await execFileP(ETCDCTL!, ['--endpoints', srv.endpoint, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 20_000 });
      return r.stdout + r.stderr;
    };

    it('endpoint status -w json', async () => {
      const [e] = JSON.parse(await ctl('endpoint', 'status', '-w', 'json'));
      assert.equal(e.Status.version, '3.5.99');
      assert.equal(String(e.Status.leader), String(e.Status.header.member_id));
      assert.ok(e.Status.dbSize > 0);
      assert.equal(e.Status.raftTerm, e.Status.header.raft_term);
    });

    it('endpoint health', async () => {
      assert.match(await ctl('endpoint', 'health'), /is healthy: successfully committed proposal/);
    });

    it('member list and alarm list', async () => {
      const r = JSON.parse(await ctl('member', 'list', '-w', 'json'));
      assert.equal(r.members.length, 1);
      assert.equal(r.members[0].name, 'm1');
      assert.equal(await ctl('alarm', 'list'), '');
    });
  });
});
