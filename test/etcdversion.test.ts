/**
 * Behaviours that changed between etcd releases follow --etcd-version (issue 18, item 2); each
 * is pinned under a version before and after the change, through raw gRPC.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { etcdBehaviour } from '../src/etcdversion.ts';
import { expectGrpcError, rawClients, type Raw } from './helpers/raw.ts';
import { startServer, type TestServer } from './helpers/server.ts';
import { isProgress, RawWatch } from './helpers/watch.ts';

describe('etcdBehaviour', () => {
  it('switches each change at the releases that carry it, per release line', () => {
    const b = (v: string) => etcdBehaviour(v);
    assert.equal(b('3.5.21').noProgressBeforeStart, false);
    assert.equal(b('3.5.22').noProgressBeforeStart, true);
    assert.equal(b('3.4.37').noProgressBeforeStart, false);
    assert.equal(b('3.4.38').noProgressBeforeStart, true);
    assert.equal(b('3.6.1').noProgressBeforeStart, false);
    assert.equal(b('3.6.2').noProgressBeforeStart, true);
    assert.equal(b('3.5.23').rejectNegativeWatchStart, false);
    assert.equal(b('3.5.24').rejectNegativeWatchStart, true);
    assert.equal(b('3.6.5').rejectNegativeWatchStart, false);
    assert.equal(b('3.6.6').rejectNegativeWatchStart, true);
    assert.equal(b('3.5.7').dropProgressWhenUnsynced, false);
    assert.equal(b('3.5.8').dropProgressWhenUnsynced, true);
    assert.equal(b('3.6.0').dropProgressWhenUnsynced, true);
    assert.equal(b('3.5.17').v36Fields, false);
    assert.equal(b('3.6.0').rejectUnknownSortOrder, true);
    assert.equal(b('3.4.23').alarmHeader, false);
    assert.equal(b('3.5.0').alarmHeader, true);
    assert.throws(() => b('3.7.0'), /up to 3\.6/);
    assert.throws(() => b('2.3.8'), /3\.4, 3\.5 or 3\.6/);
  });
});

/** Two servers on their own databases, one per version. */
async function pair(older: string, newer: string): Promise<{ old: TestServer; neu: TestServer; rawOld: Raw; rawNew: Raw; close(): Promise<void> }> {
  const [old, neu] = await Promise.all([
    startServer({ etcdVersion: older, progressNotifyIntervalMs: 200 }),
    startServer({ etcdVersion: newer, progressNotifyIntervalMs: 200 }),
  ]);
  const rawOld = rawClients(old.endpoint);
  const rawNew = rawClients(neu.endpoint);
  return {
    old, neu, rawOld, rawNew,
    close: async () => { rawOld.close(); rawNew.close(); await Promise.all([old.stop(), neu.stop()]); },
  };
}

describe('behaviours under two etcd versions', () => {
  let p: Awaited<ReturnType<typeof pair>>;
  before(async () => { p = await pair('3.5.17', '3.6.11'); });
  after(async () => p?.close());

  it('progress_notify on a watch that starts in the future: ticks before 3.5.22, none after', async () => {
    const count = async (raw: Raw): Promise<number> => {
      const rev = Number((await raw.call('KV', 'Range', { key: Buffer.from('/v/none') })).header.revision);
      const w = new RawWatch(raw);
      try {
        await w.watch({ key: Buffer.from('/v/future'), start_revision: String(rev + 5), progress_notify: true });
        // Five intervals of 200 ms (etcd adds up to 10 % jitter).
        await new Promise((r) => setTimeout(r, 1100));
        return w.all.filter((r) => isProgress(r)).length;
      } finally {
        w.close();
      }
    };
    assert.ok((await count(p.rawOld)) >= 2, 'etcd 3.5.17 sends progress notifications to a future watcher');
    assert.equal(await count(p.rawNew), 0, 'etcd 3.6.11 sends none until the store reaches its start');
  });

  it('an unknown sort order: ignored (key order) before 3.6, "invalid sort option" from 3.6', async () => {
    for (const raw of [p.rawOld, p.rawNew]) {
      for (const k of ['b', 'a', 'c']) await raw.call('KV', 'Put', { key: Buffer.from(`/v/sort/${k}`), value: Buffer.from(k) });
    }
    const req = { key: Buffer.from('/v/sort/'), range_end: Buffer.from('/v/sort0'), sort_order: 7, sort_target: 3, limit: 2 };
    const r = await p.rawOld.call('KV', 'Range', req);
    assert.deepEqual(r.kvs.map((kv: { key: Buffer }) => kv.key.toString()), ['/v/sort/a', '/v/sort/b']);
    assert.equal(r.more, true);
    await expectGrpcError(p.rawNew.call('KV', 'Range', req), grpc.status.INVALID_ARGUMENT, 'etcdserver: invalid sort option');
    // An unknown target is refused under both (etcd before 3.6 crashed on it).
    await expectGrpcError(p.rawOld.call('KV', 'Range', { ...req, sort_order: 1, sort_target: 9 }), grpc.status.INVALID_ARGUMENT, 'etcdserver: invalid sort option');
  });

  it('a negative start revision: watches from now on a never-compacted store before 3.5.24, created+canceled after', async () => {
    const wOld = new RawWatch(p.rawOld);
    const wNew = new RawWatch(p.rawNew);
    try {
      const created = await wOld.watch({ key: Buffer.from('/v/neg'), start_revision: '-1' });
      assert.equal(created.canceled, false);
      await p.rawOld.call('KV', 'Put', { key: Buffer.from('/v/neg'), value: Buffer.from('x') });
      const { events } = await wOld.events(created.watch_id, 1);
      assert.equal(events[0]!.kv.key.toString(), '/v/neg');
      const refused = await wNew.watch({ key: Buffer.from('/v/neg'), start_revision: '-1' });
      assert.equal(refused.canceled, true);
      assert.equal(refused.watch_id, '-1');
      assert.equal(refused.cancel_reason, 'etcdserver: mvcc: required revision has been compacted');
    } finally {
      wOld.close();
      wNew.close();
    }
  });

  it("Status and HashKV carry 3.6's fields only when reporting 3.6", async () => {
    const sOld = await p.rawOld.call('Maintenance', 'Status', {});
    const sNew = await p.rawNew.call('Maintenance', 'Status', {});
    assert.equal(sOld.version, '3.5.17');
    assert.equal(sOld.storageVersion, '');
    assert.equal(sOld.downgradeInfo, null);
    assert.equal(sNew.version, '3.6.11');
    assert.equal(sNew.storageVersion, '3.6.0');
    assert.deepEqual(sNew.downgradeInfo, { enabled: false, targetVersion: '' });
    const hOld = await p.rawOld.call('Maintenance', 'HashKV', {});
    const hNew = await p.rawNew.call('Maintenance', 'HashKV', {});
    assert.equal(hOld.hash_revision, '0');
    assert.equal(hNew.hash_revision, hNew.header.revision);
  });
});
