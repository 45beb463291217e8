import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { startServer, type TestServer } from './helpers/server.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { isProgress, RawWatch, type WResp } from './helpers/watch.ts';
import type { WatchComponent } from '../src/watch/index.ts';

const B = (s: string): Buffer => Buffer.from(s);
const MiB = 1024 * 1024;

/** etcd 3.5's Watch semantics, one by one, over raw gRPC (our .proto, no client library). */
describe('Watch semantics (raw gRPC)', () => {
  let srv: TestServer;
  let raw: Raw;
  const streams: RawWatch[] = [];
  const open = (): RawWatch => {
    const w = new RawWatch(raw);
    streams.push(w);
    return w;
  };
  const put = async (key: string | Buffer, value: string | Buffer = 'v'): Promise<number> => {
    const r = await raw.call('KV', 'Put', { key: typeof key === 'string' ? B(key) : key, value: typeof value === 'string' ? B(value) : value });
    return Number(r.header.revision);
  };
  const del = async (key: string, rangeEnd?: string): Promise<number> => {
    const r = await raw.call('KV', 'DeleteRange', { key: B(key), range_end: rangeEnd === undefined ? undefined : B(rangeEnd) });
    return Number(r.header.revision);
  };
  const current = async (): Promise<number> => Number((await raw.call('KV', 'Range', { key: B('\0'), count_only: true })).header.revision);
  const watchStats = () => (srv.app.components[0] as WatchComponent).stats();

  before(async () => {
    srv = await startServer({ progressNotifyIntervalMs: 300 });
    raw = rawClients(srv.endpoint);
  });
  after(async () => {
    for (const s of streams) s.close();
    raw.close();
    await srv.stop();
  });

  it('sends created first (ids from 0, header = current revision), then events with their revisions', async () => {
    const r0 = await put('s1/x');
    const w = open();
    const c0 = await w.watch({ key: B('s1/a') });
    assert.equal(c0.watch_id, '0');
    assert.equal(c0.created, true);
    assert.equal(c0.canceled, false);
    assert.equal(Number(c0.header.revision), r0);
    assert.notEqual(c0.header.cluster_id, '0');
    assert.notEqual(c0.header.member_id, '0');
    const c1 = await w.watch({ key: B('s1/b') });
    assert.equal(c1.watch_id, '1');

    const r1 = await put('s1/a', 'one');
    const e1 = await w.next();
    assert.equal(e1.watch_id, '0');
    assert.equal(Number(e1.header.revision), r1);
    assert.equal(e1.events.length, 1);
    const ev = e1.events[0]!;
    assert.equal(ev.type, 0);
    assert.equal(ev.kv.key.toString(), 's1/a');
    assert.equal(ev.kv.value.toString(), 'one');
    assert.equal(Number(ev.kv.mod_revision), r1);
    assert.equal(Number(ev.kv.create_revision), r1);
    assert.equal(ev.kv.version, '1');
    assert.equal(ev.prev_kv, null);

    const r2 = await del('s1/a');
    const e2 = await w.next();
    assert.equal(Number(e2.header.revision), r2);
    const d = e2.events[0]!;
    assert.equal(d.type, 1);
    // etcd's delete event: only the key and the delete's revision.
    assert.equal(d.kv.key.toString(), 's1/a');
    assert.equal(Number(d.kv.mod_revision), r2);
    assert.equal(d.kv.create_revision, '0');
    assert.equal(d.kv.version, '0');
    assert.equal(d.kv.value.length, 0);
    assert.equal(d.kv.lease, '0');
    assert.deepEqual(await w.barrier(), []);
  });

  it('start_revision 0 watches from after the current revision', async () => {
    await put('s2/k', 'before');
    const w = open();
    await w.watch({ key: B('s2/k') });
    const r = await put('s2/k', 'after');
    const e = await w.next();
    assert.deepEqual(e.events.map((x) => x.kv.value.toString()), ['after']);
    assert.equal(Number(e.events[0]!.kv.mod_revision), r);
    assert.deepEqual(await w.barrier(), []);
  });

  it('client-chosen ids, automatic ids skipping taken ones, and etcd\'s create errors', async () => {
    const w = open();
    const rev = await current();
    assert.equal((await w.watch({ key: B('s3'), watch_id: '1' })).watch_id, '1');
    assert.equal((await w.watch({ key: B('s3') })).watch_id, '0');
    assert.equal((await w.watch({ key: B('s3') })).watch_id, '2'); // 1 is taken
    assert.equal((await w.watch({ key: B('s3'), watch_id: '9223372036854775807' })).watch_id, '9223372036854775807');

    const failed = async (req: Record<string, unknown>, reason: string): Promise<void> => {
      const r = await w.watch(req);
      assert.equal(r.created, true);
      assert.equal(r.canceled, true);
      assert.equal(r.watch_id, '-1');
      assert.equal(r.cancel_reason, reason);
      assert.equal(Number(r.header.revision), rev);
    };
    await failed({ key: B('s3'), watch_id: '1' }, 'mvcc: duplicate watch ID provided on the WatchStream');
    await failed({ key: B('b'), range_end: B('a') }, 'mvcc: watcher range is empty');
    await failed({ key: B('b'), range_end: B('b') }, 'mvcc: watcher range is empty');
    await failed({ key: B('s3'), start_revision: '-1' }, 'etcdserver: mvcc: required revision has been compacted');
    // The stream still works, and the failed creates took no id.
    assert.equal((await w.watch({ key: B('s3') })).watch_id, '3');
  });

  it('key ranges: single key, prefix, from-key ("\\0"), all keys, empty key', async () => {
    const w = open();
    await w.watch({ key: B('s4/'), range_end: B('s40') }); // 0: prefix s4/
    await w.watch({ key: B('s4/m'), range_end: B('\0') }); // 1: from s4/m
    await w.watch({ key: B('\0'), range_end: B('\0') }); // 2: every key
    await w.watch({ key: B('') }); // 3: empty key = the key "\0"
    await w.watch({ key: B(''), range_end: B('\0') }); // 4: every key
    await w.watch({ key: B('s4/a') }); // 5: single key
    await put('s4/a');
    await put('s4/z');
    await put('s5');
    await put(B('\0'));
    const got = new Map<string, string[]>();
    for (const r of await w.barrier()) {
      for (const e of r.events) got.set(r.watch_id, [...(got.get(r.watch_id) ?? []), e.kv.key.toString('latin1')]);
    }
    assert.deepEqual(got.get('0'), ['s4/a', 's4/z']);
    assert.deepEqual(got.get('1'), ['s4/z', 's5']);
    assert.deepEqual(got.get('2'), ['s4/a', 's4/z', 's5', '\0']);
    assert.deepEqual(got.get('3'), ['\0']);
    assert.deepEqual(got.get('4'), ['s4/a', 's4/z', 's5', '\0']);
    assert.deepEqual(got.get('5'), ['s4/a']);
  });

  it('cancel answers canceled; an unknown id gets no answer; no event follows a cancel', async () => {
    const w = open();
    await w.watch({ key: B('s6/a') });
    await w.watch({ key: B('s6/other') });
    const rev = await current();
    w.cancel('0');
    const c = await w.next();
    assert.deepEqual([c.watch_id, c.canceled, c.created, Number(c.header.revision)], ['0', true, false, rev]);
    w.cancel('55');
    await put('s6/a');
    assert.deepEqual(await w.barrier(), []);
  });

  it('filters: NOPUT and NODELETE; a response the filters empty is not sent', async () => {
    const w = open();
    await w.watch({ key: B('s7'), filters: [0] }); // 0: NOPUT
    await w.watch({ key: B('s7'), filters: [1] }); // 1: NODELETE
    await w.watch({ key: B('s7'), filters: [0, 1] }); // 2: nothing
    await put('s7');
    await del('s7');
    const rs = await w.barrier();
    assert.deepEqual(rs.map((r) => [r.watch_id, r.events.map((e) => e.type)]), [['1', [0]], ['0', [1]]]);
  });

  it('prev_kv on puts and deletes; none on a create; none unless asked', async () => {
    const w = open();
    await w.watch({ key: B('s8'), prev_kv: true }); // 0
    await w.watch({ key: B('s8') }); // 1
    const r1 = await put('s8', 'v1');
    const r2 = await put('s8', 'v2');
    const r3 = await del('s8');
    await put('s8', 'v3');
    const rs = await w.barrier();
    const mine = rs.filter((r) => r.watch_id === '0').flatMap((r) => r.events);
    assert.equal(mine.length, 4);
    assert.equal(mine[0]!.prev_kv, null);
    assert.deepEqual(
      { ...mine[1]!.prev_kv!, key: mine[1]!.prev_kv!.key.toString(), value: mine[1]!.prev_kv!.value.toString() },
      { key: 's8', value: 'v1', create_revision: String(r1), mod_revision: String(r1), version: '1', lease: '0' },
    );
    assert.equal(Number(mine[2]!.kv.mod_revision), r3);
    assert.equal(mine[2]!.prev_kv!.value.toString(), 'v2');
    assert.equal(Number(mine[2]!.prev_kv!.mod_revision), r2);
    assert.equal(mine[2]!.prev_kv!.version, '2');
    assert.equal(mine[3]!.prev_kv, null); // a create after a delete
    const plain = rs.filter((r) => r.watch_id === '1').flatMap((r) => r.events);
    assert.equal(plain.length, 4);
    assert.ok(plain.every((e) => e.prev_kv === null));
  });

  it('a txn\'s events share one revision and one response, in operation order', async () => {
    await put('s9/c');
    const w = open();
    await w.watch({ key: B('s9/'), range_end: B('s90') });
    const t = await raw.call('KV', 'Txn', {
      success: [
        { request_put: { key: B('s9/b'), value: B('1') } },
        { request_put: { key: B('s9/a'), value: B('2') } },
        { request_delete_range: { key: B('s9/c') } },
      ],
    });
    const r = await w.next();
    assert.equal(r.header.revision, t.header.revision);
    assert.deepEqual(r.events.map((e) => [e.type, e.kv.key.toString(), e.kv.mod_revision]),
      [[0, 's9/b', t.header.revision], [0, 's9/a', t.header.revision], [1, 's9/c', t.header.revision]]);
  });

  it('a start in the past replays history in order, then continues live without gap or duplicate', async () => {
    const revs: number[] = [];
    for (let i = 1; i <= 5; i++) revs.push(await put(`s10/${i}`, `v${i}`));
    await put('s11/noise');
    const w = open();
    const c = await w.watch({ key: B('s10/'), range_end: B('s100'), start_revision: String(revs[1]) });
    assert.equal(Number(c.header.revision), await current());
    const live = await put('s10/6', 'v6');
    const { events } = await w.events(c.watch_id, 5);
    assert.deepEqual(events.map((e) => Number(e.kv.mod_revision)), [...revs.slice(1), live]);
    assert.deepEqual(await w.barrier(), []);
  });

  it('RequestProgress answers with watch_id -1 and the current revision, after the events before it', async () => {
    const w = open();
    await w.watch({ key: B('s12') });
    let last = 0;
    for (let i = 0; i < 3; i++) last = await put('s12', String(i));
    w.progress();
    const seen: WResp[] = [];
    for (;;) {
      const r = await w.next();
      if (r.watch_id === '-1') {
        assert.ok(isProgress(r));
        assert.equal(Number(r.header.revision), last);
        break;
      }
      seen.push(r);
    }
    assert.deepEqual(seen.flatMap((r) => r.events.map((e) => Number(e.kv.mod_revision))), [last - 2, last - 1, last]);
  });

  it('RequestProgress while a watcher starts in the future is dropped (etcd 3.6.2+, the default version)', async () => {
    const w = open();
    const cur = await current();
    await w.watch({ key: B('s13/other') }); // 0
    await w.watch({ key: B('s13/k'), start_revision: String(cur + 3) }); // 1
    w.progress();
    await put('s13/other'); // cur+1
    await put('s13/other'); // cur+2
    await put('s13/k'); // cur+3
    const order: string[] = [];
    while (order.length < 3) {
      const r = await w.next();
      order.push(isProgress(r) ? `progress@${Number(r.header.revision) - cur}` : `${r.watch_id}@${Number(r.events[0]!.kv.mod_revision) - cur}`);
    }
    assert.deepEqual(order, ['0@1', '0@2', '1@3']);
    // Every watcher has reached its start now: a new request is answered, and nothing else came.
    assert.deepEqual(await w.barrier(), []);
  });

  it('RequestProgress on a stream without watchers sends nothing (etcd 3.5)', async () => {
    const w = open();
    w.progress();
    const c = await w.watch({ key: B('s14') });
    assert.equal(c.watch_id, '0'); // the created response came first: no progress was queued
    assert.deepEqual(await w.barrier(), []);
  });

  it('progress_notify: an idle watcher gets empty responses with its id and the current revision', async () => {
    const w = open();
    await w.watch({ key: B('s15'), progress_notify: true });
    await w.watch({ key: B('s15/quiet') });
    const r = await w.next(10_000);
    assert.ok(isProgress(r));
    assert.equal(r.watch_id, '0');
    assert.equal(Number(r.header.revision), await current());
  });

  it('compaction: a start below the compact revision gets created, then canceled with compact_revision', async () => {
    const r1 = await put('s16', 'a');
    const r2 = await put('s16', 'b');
    await raw.call('KV', 'Compact', { revision: String(r2) });
    const w = open();
    const c = await w.watch({ key: B('s16'), start_revision: String(r1) });
    assert.equal(c.canceled, false);
    const x = await w.next();
    assert.equal(x.watch_id, c.watch_id);
    assert.equal(x.canceled, true);
    assert.equal(x.created, false);
    assert.equal(Number(x.compact_revision), r2);
    assert.equal(x.header.revision, '0'); // etcd sends no revision with it
    assert.equal(x.cancel_reason, '');
    // Exactly at the compact revision is still allowed.
    const ok = await w.watch({ key: B('s16'), start_revision: String(r2) });
    const e = await w.next();
    assert.equal(e.watch_id, ok.watch_id);
    assert.deepEqual(e.events.map((v) => v.kv.value.toString()), ['b']);
  });

  it('fragment: one revision larger than the limit is fragmented only for watchers that ask', async () => {
    const value = Buffer.alloc(10 * 1024, 'x');
    const first = await put('s17/000', value);
    for (let i = 1; i < 300; i++) await put(`s17/${String(i).padStart(3, '0')}`, value);
    const w = open();
    const frag = await w.watch({ key: B('s17/'), range_end: B('s170'), prev_kv: true, fragment: true });
    const whole = await w.watch({ key: B('s17/'), range_end: B('s170'), prev_kv: true });
    const rev = await del('s17/', 's170');
    const f = await w.events(frag.watch_id, 300);
    const limit = 1.5 * MiB + 512 * 1024;
    assert.ok(f.responses.length >= 2, `${f.responses.length} fragments`);
    f.responses.forEach((r, i) => {
      assert.equal(r.fragment, i < f.responses.length - 1);
      assert.equal(Number(r.header.revision), rev);
    });
    assert.deepEqual(f.events.map((e) => e.kv.key.toString()), Array.from({ length: 300 }, (_, i) => `s17/${String(i).padStart(3, '0')}`));
    const wh = await w.events(whole.watch_id, 300);
    assert.equal(wh.responses.length, 1); // a revision is never split without fragment
    assert.equal(wh.responses[0]!.fragment, false);

    // A replay of many revisions is split at revision boundaries to stay under the limit.
    const w2 = open();
    const c = await w2.watch({ key: B('s17/'), range_end: B('s170'), start_revision: String(first) });
    const h = await w2.events(c.watch_id, 600);
    assert.ok(h.responses.length >= 2);
    for (const r of h.responses) {
      assert.equal(r.fragment, false);
      const size = r.events.reduce((n, e) => n + e.kv.value.length, 0);
      assert.ok(size < limit || new Set(r.events.map((e) => e.kv.mod_revision)).size === 1);
      assert.ok(Number(r.header.revision) >= Number(r.events.at(-1)!.kv.mod_revision));
    }
    assert.deepEqual(h.events.map((e) => Number(e.kv.mod_revision)), [...Array.from({ length: 300 }, (_, i) => first + i), ...Array(300).fill(rev)]);
  });

  it('stream teardown (client cancel, deadline) frees every watcher', async () => {
    const base = watchStats();
    const w = open();
    for (let i = 0; i < 3; i++) await w.watch({ key: B(`s18/${i}`) });
    assert.equal(watchStats().syncedWatchers, base.syncedWatchers + 3);
    w.close();
    const d = new RawWatch(raw, { deadline: Date.now() + 1500 });
    await d.watch({ key: B('s18/d') });
    await assert.rejects(d.next(10_000), /stream failed: 4 /);
    for (let i = 0; i < 100 && watchStats().streams > base.streams; i++) await new Promise((r) => setTimeout(r, 50));
    const now = watchStats();
    assert.equal(now.streams, base.streams);
    assert.equal(now.syncedWatchers, base.syncedWatchers);
    assert.equal(now.unsyncedWatchers, base.unsyncedWatchers);
  });

  it('server shutdown ends streams with UNAVAILABLE "etcdserver: server stopped"', async () => {
    const s2 = await startServer({ databaseUrl: srv.databaseUrl });
    const raw2 = rawClients(s2.endpoint);
    try {
      const w = new RawWatch(raw2);
      await w.watch({ key: B('s19') });
      await s2.stop();
      await assert.rejects(w.next(10_000), /stream failed/);
      assert.equal(w.error!.code, grpc.status.UNAVAILABLE);
      assert.equal(w.error!.details, 'etcdserver: server stopped');
    } finally {
      raw2.close();
      await s2.stop();
    }
  });
});
