import { assertConsistent } from './helpers/consistency.ts';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { startServer, type TestServer } from './helpers/server.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { sqlFor } from './helpers/db.ts';
import { isProgress, RawWatch, type WResp } from './helpers/watch.ts';
import type { WatchComponent } from '../src/watch/index.ts';

const B = (s: string): Buffer => Buffer.from(s);

interface Ev { rev: number; key: string; type: number; value: string }

function flat(rs: WResp[]): Ev[] {
  return rs.flatMap((r) => r.events.map((e) => ({ rev: Number(e.kv.mod_revision), key: e.kv.key.toString(), type: e.type, value: e.kv.value.toString() })));
}

const stats = (s: TestServer) => (s.app.components[0] as WatchComponent).stats();

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Several pgetcd instances on one database: events written through one reach watchers on the
 * others in the same order with the same revisions, under a burst, and across a lost LISTEN
 * connection. Pins etcd's six watch guarantees.
 */
describe('Watch across instances (one database)', () => {
  let a: TestServer;
  let b: TestServer;
  let rawA: Raw;
  let rawB: Raw;
  const streams: RawWatch[] = [];
  const open = (raw: Raw): RawWatch => {
    const w = new RawWatch(raw);
    streams.push(w);
    return w;
  };

  before(async () => {
    a = await startServer();
    b = await startServer({ databaseUrl: a.databaseUrl });
    rawA = rawClients(a.endpoint);
    rawB = rawClients(b.endpoint);
  });
  after(async () => {
    for (const s of streams) s.close();
    rawA.close();
    rawB.close();
    try {
      await assertConsistent(a.databaseUrl);
    } finally {
      await b.stop();
      await a.stop();
    }
  });

  it('writes through A are seen by watchers on A and B in the same order with the same revisions', async () => {
    const wa = open(rawA);
    const wb = open(rawB);
    const ca = await wa.watch({ key: B('c1/'), range_end: B('c10'), prev_kv: true });
    const cb = await wb.watch({ key: B('c1/'), range_end: B('c10'), prev_kv: true });
    const written: Ev[] = [];
    for (let i = 0; i < 30; i++) {
      const key = `c1/${i % 7}`;
      if (i % 5 === 4) {
        const r = await rawA.call('KV', 'DeleteRange', { key: B(key) });
        if (r.deleted !== '0') written.push({ rev: Number(r.header.revision), key, type: 1, value: '' });
      } else {
        const r = await rawA.call('KV', 'Put', { key: B(key), value: B(`v${i}`) });
        written.push({ rev: Number(r.header.revision), key, type: 0, value: `v${i}` });
      }
    }
    const ea = flat((await wa.events(ca.watch_id, written.length)).responses);
    const eb = flat((await wb.events(cb.watch_id, written.length)).responses);
    assert.deepEqual(ea, written);
    assert.deepEqual(eb, written);
    assert.deepEqual(await wb.barrier(), []);
  });

  it('a burst of 10,000 writes from many concurrent clients on both instances reaches every watcher complete and in order (the six guarantees)', async () => {
    const N = 10_000;
    const TXN_EVERY = 50; // every 50th write is a txn of three puts: one revision, three events
    const wa = open(rawA);
    const wb = open(rawB);
    const ca = await wa.watch({ key: B('w/'), range_end: B('w0') });
    const cb = await wb.watch({ key: B('w/'), range_end: B('w0') });
    const cKey = await wb.watch({ key: B('w/7') }); // a single-key watcher on the same stream
    const etcd = new Etcd3({ hosts: b.endpoint });
    const viaClient: number[] = [];
    const cw = await etcd.watch().prefix('w/').create();
    cw.on('put', (kv) => viaClient.push(Number(kv.mod_revision)));

    // Progress requests during the burst: bookmarkable = no event at or below a progress revision after it.
    const progressAt: number[] = [];
    let bursting = true;
    const pinger = (async () => {
      while (bursting) {
        wb.progress();
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    const writers: Raw[] = [];
    for (let i = 0; i < 8; i++) writers.push(rawClients(i % 2 === 0 ? a.endpoint : b.endpoint));
    const revs: number[] = [];
    const txnRevs = new Set<number>();
    let next = 0;
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 64 }, async (_, c) => {
      const raw = writers[c % writers.length]!;
      for (let i = next++; i < N; i = next++) {
        if (i % TXN_EVERY === 0) {
          const r = await raw.call('KV', 'Txn', {
            success: [0, 1, 2].map((j) => ({ request_put: { key: B(`w/t${j}`), value: B(String(i)) } })),
          });
          revs.push(Number(r.header.revision));
          txnRevs.add(Number(r.header.revision));
        } else {
          const r = await raw.call('KV', 'Put', { key: B(`w/${i % 500}`), value: B(String(i)) });
          revs.push(Number(r.header.revision));
        }
      }
    }));
    const writeMs = Date.now() - t0;
    bursting = false;
    await pinger;
    for (const w of writers) w.close();

    revs.sort((x, y) => x - y);
    const first = revs[0]!;
    const last = revs.at(-1)!;
    assert.equal(last - first + 1, N, 'the burst used exactly N consecutive revisions');
    const total = N + 2 * txnRevs.size;

    const check = (rs: WResp[], id: string, label: string): Ev[] => {
      const mine = rs.filter((r) => r.watch_id === id && r.events.length > 0);
      const evs = flat(mine);
      assert.equal(evs.length, total, `${label}: complete`);
      for (let i = 1; i < evs.length; i++) {
        assert.ok(evs[i]!.rev >= evs[i - 1]!.rev, `${label}: ordered at ${i}`);
      }
      // unique + reliable: every revision of the burst, each exactly as many times as it has events
      const revsSeen = [...new Set(evs.map((e) => e.rev))];
      assert.deepEqual(revsSeen, Array.from({ length: N }, (_, i) => first + i), `${label}: reliable`);
      const keys = new Set(evs.map((e) => `${e.rev}/${e.key}`));
      assert.equal(keys.size, evs.length, `${label}: unique`);
      // atomic: a revision's events never span two responses
      const where = new Map<number, number>();
      mine.forEach((r, i) => {
        for (const e of r.events) {
          const rev = Number(e.kv.mod_revision);
          const at = where.get(rev);
          assert.ok(at === undefined || at === i, `${label}: revision ${rev} split across responses`);
          where.set(rev, i);
        }
      });
      for (const t of txnRevs) assert.equal(evs.filter((e) => e.rev === t).length, 3, `${label}: txn ${t} whole`);
      return evs;
    };

    // Read everything A's and B's streams got, up to a final barrier.
    const readAll = async (w: RawWatch, want: number): Promise<WResp[]> => {
      const out: WResp[] = [];
      let n = 0;
      while (n < want) {
        const r = await w.next(60_000);
        out.push(r);
        if (r.watch_id === ca.watch_id || r.watch_id === cb.watch_id) n += r.events.length;
      }
      return [...out, ...(await w.barrier())];
    };
    const ra = await readAll(wa, total);
    const rb = await readAll(wb, total);
    const evA = check(ra, ca.watch_id, 'A');
    const evB = check(rb, cb.watch_id, 'B');
    assert.deepEqual(evA, evB, 'A and B saw the same events');

    // bookmarkable, on B's stream (which carried the progress requests)
    const seq: Array<{ progress?: number; rev?: number }> = [];
    for (const r of rb) {
      if (r.watch_id === '-1' && isProgress(r)) seq.push({ progress: Number(r.header.revision) });
      else if (r.watch_id === cb.watch_id) for (const e of r.events) seq.push({ rev: Number(e.kv.mod_revision) });
    }
    let bookmark = 0;
    for (const s of seq) {
      if (s.progress !== undefined) {
        assert.ok(s.progress >= bookmark, 'progress revisions never go back');
        bookmark = s.progress;
        progressAt.push(s.progress);
      } else {
        assert.ok(s.rev! > bookmark, `event ${s.rev} after progress ${bookmark}`);
      }
    }
    assert.ok(progressAt.length > 0, 'progress responses were answered during the burst');

    // the single-key watcher on B
    const keyEvs = flat(rb.filter((r) => r.watch_id === cKey.watch_id));
    assert.deepEqual(keyEvs, evB.filter((e) => e.key === 'w/7'));

    // the etcd3 npm client saw the same puts
    await until(() => viaClient.length >= total, 'etcd3 client events');
    assert.deepEqual(viaClient, evB.map((e) => e.rev));
    await cw.cancel();
    etcd.close();

    // resumable: a new watch from R+1 continues exactly after R (from the ring on B, from
    // kv_log on a fresh instance C whose ring is empty)
    const mid = first + Math.floor(N / 2);
    const expectTail = evB.filter((e) => e.rev > mid);
    const wr = open(rawB);
    const cr = await wr.watch({ key: B('w/'), range_end: B('w0'), start_revision: String(mid + 1) });
    assert.deepEqual(flat((await wr.events(cr.watch_id, expectTail.length)).responses), expectTail);
    assert.deepEqual(await wr.barrier(), []);
    const c = await startServer({ databaseUrl: a.databaseUrl });
    const rawC = rawClients(c.endpoint);
    try {
      const wc = new RawWatch(rawC);
      const cc = await wc.watch({ key: B('w/'), range_end: B('w0'), start_revision: String(mid + 1) });
      assert.deepEqual(flat((await wc.events(cc.watch_id, expectTail.length)).responses), expectTail);
      assert.deepEqual(await wc.barrier(), []);
      assert.ok(stats(c).hub.dbCatchupReads > 0, 'C read history from kv_log');
      wc.close();
    } finally {
      rawC.close();
      await c.stop();
    }
    console.log(`# burst: ${N} writes (${txnRevs.size} txns) in ${writeMs} ms; ${progressAt.length} progress responses`);
  });

  it('after the LISTEN connections are killed (pg_terminate_backend), no event is lost or duplicated', async () => {
    const wb = open(rawB);
    const cb = await wb.watch({ key: B('r/'), range_end: B('r0') });
    const before = stats(b).feed.reconnects;
    const sql = sqlFor(a.databaseUrl);
    const expected: number[] = [];
    try {
      for (let i = 0; i < 5; i++) expected.push(Number((await rawA.call('KV', 'Put', { key: B(`r/${i}`), value: B('x') })).header.revision));
      const killed = await sql`SELECT pg_terminate_backend(pid) AS ok, pid FROM pg_stat_activity
        WHERE datname = current_database() AND (query ILIKE 'LISTEN%' OR application_name = 'pgetcd-watch')`;
      assert.ok(killed.length >= 2, `killed ${killed.length} LISTEN connections`);
      // Written through A while B's LISTEN connection is down: B learns of them only by re-reading.
      for (let i = 5; i < 25; i++) expected.push(Number((await rawA.call('KV', 'Put', { key: B(`r/${i}`), value: B('x') })).header.revision));
      await until(() => stats(b).feed.reconnects > before, 'B reconnected');
      const got = flat((await wb.events(cb.watch_id, 25)).responses);
      assert.deepEqual(got.map((e) => e.rev), expected);
      // And the new LISTEN connection carries notifications again.
      const after = Number((await rawA.call('KV', 'Put', { key: B('r/after'), value: B('x') })).header.revision);
      const e = await wb.next();
      assert.deepEqual(e.events.map((x) => Number(x.kv.mod_revision)), [after]);
      assert.deepEqual(await wb.barrier(), []);
      const listening = await sql`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'pgetcd-watch'`;
      assert.equal(listening[0]!.n, 2, 'one LISTEN connection per instance');
    } finally {
      await sql.end();
    }
  });
});
