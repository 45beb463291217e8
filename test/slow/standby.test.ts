/**
 * Reads from hot standbys (--read-endpoint), with real servers: Debian's PostgreSQL runs a
 * primary and a streaming hot standby (pg_basebackup). Two pgetcd instances share the primary:
 * `s` sends serializable Ranges, Ranges at a past revision and watch catch-up reads to the
 * standby; `p` has no standby and reads the primary. Their answers are compared.
 *
 * - at the same revision the standby's answers equal the primary's (seeded random history with
 *   deletes; paginated lists, counts, sorts, single keys; watch catch-up from old revisions);
 * - with the standby's replay paused (pg_wal_replay_pause) it falls behind --read-max-lag and
 *   the primary answers; after pg_wal_replay_resume it takes reads again;
 * - the standby stopped mid-load: readers see no error, the standby comes back after a start.
 *
 * Skips without Debian's postgresql server package.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startPgCluster, pgClusterMissing, type PgCluster } from '../helpers/pgcluster.ts';
import { rawClients, type Raw } from '../helpers/raw.ts';
import { rng, seedFromEnv } from '../helpers/seed.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawWatch, type WResp } from '../helpers/watch.ts';
import type { StandbyStats } from '../../src/store/standbys.ts';

const PREFIX = '/sb/';
const END = '/sb0';
const MAX_LAG_MS = 500;

interface RangeResp {
  header: { revision: string };
  kvs: Array<{ key: Buffer; value: Buffer; create_revision: string; mod_revision: string; version: string; lease: string }>;
  more: boolean;
  count: string;
}

const why = pgClusterMissing();

function stats(s: TestServer): StandbyStats {
  return s.app.store.standbys!.stats()[0]!;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every page of a list at `revision`, limit 500, as kube-apiserver pages (later pages at the first page's revision). */
async function list(raw: Raw, revision: number, extra: object = {}): Promise<{ first: RangeResp; kvs: RangeResp['kvs'] }> {
  let key = Buffer.from(PREFIX);
  const kvs: RangeResp['kvs'] = [];
  let first: RangeResp | undefined;
  for (;;) {
    const r = await raw.call<RangeResp>('KV', 'Range', { key, range_end: Buffer.from(END), limit: 500, revision: String(revision), ...extra });
    first ??= r;
    kvs.push(...r.kvs);
    if (!r.more) return { first, kvs };
    key = Buffer.concat([r.kvs[r.kvs.length - 1]!.key, Buffer.from([0])]);
  }
}

describe('reads from a hot standby', { skip: why ?? false, timeout: 600_000 }, () => {
  let cluster: PgCluster;
  let p: TestServer;
  let s: TestServer;
  let rawP: Raw;
  let rawS: Raw;
  const seed = seedFromEnv();
  let revisions: number[] = [];

  before(async () => {
    cluster = await startPgCluster({ standbys: 1, sync: false });
    const admin = cluster.primary.sql();
    await admin.unsafe('CREATE DATABASE pgetcd');
    await admin.end();
    p = await startServer({ databaseUrl: cluster.primary.url('pgetcd') });
    rawP = rawClients(p.endpoint);
    // A seeded history with overwrites and deletes, written before `s` starts: its watch ring
    // is empty, so a watch from an old revision reads kv_log (on the standby).
    const r = rng(seed);
    revisions = [];
    for (let i = 0; i < 2500; i += 25) {
      await Promise.all(Array.from({ length: 25 }, async (_, j) => {
        const n = Math.floor(r() * 800);
        const key = Buffer.from(`${PREFIX}${n % 4}/${String(n).padStart(4, '0')}`);
        if ((i + j) % 9 === 0) await rawP.call('KV', 'DeleteRange', { key });
        else await rawP.call('KV', 'Put', { key, value: Buffer.from(`v${i + j}-${'x'.repeat(Math.floor(r() * 200))}`) });
      }));
      const h = await rawP.call<RangeResp>('KV', 'Range', { key: Buffer.from('/none') });
      revisions.push(Number(h.header.revision));
    }
    // No head cache here: it answers head and recent reads before a standby is asked, and these
    // tests are about which reads the standby takes (the cache with a standby is tested below).
    s = await startServer({ databaseUrl: cluster.primary.url('pgetcd'), readEndpoint: [cluster.standbys[0]!.url('pgetcd')], readMaxLag: MAX_LAG_MS, cacheMaxBytes: 0 });
    rawS = rawClients(s.endpoint);
  }, { timeout: 300_000 });

  after(async () => {
    rawP?.close();
    rawS?.close();
    await s?.stop();
    await p?.stop();
    await cluster?.destroy();
  });

  it('answers from the standby equal the primary\'s at the same revision (lists, counts, sorts, keys, watch catch-up)', { timeout: 300_000 }, async (t) => {
    t.diagnostic(`seed ${seed} (PGETCD_TEST_SEED to rerun)`);
    const head = revisions.at(-1)!;
    await until('the standby replayed the history', () => stats(s).up && stats(s).revision >= head);
    const before = stats(s).served;
    const r = rng(seed + 1);
    const picks = [revisions[0]!, head, ...Array.from({ length: 8 }, () => revisions[Math.floor(r() * revisions.length)]!)];
    let compared = 0;
    for (const rev of picks) {
      const a = await list(rawP, rev);
      const b = await list(rawS, rev);
      assert.deepEqual(b.kvs, a.kvs, `list at ${rev}`);
      assert.equal(b.first.count, a.first.count, `count at ${rev}`);
      for (const extra of [
        { count_only: true },
        { keys_only: true, limit: 40 },
        { sort_target: 3, sort_order: 2, limit: 50 },
        { sort_target: 4, sort_order: 1, limit: 20, min_mod_revision: String(revisions[1]) },
      ]) {
        const x = await rawP.call<RangeResp>('KV', 'Range', { key: Buffer.from(PREFIX), range_end: Buffer.from(END), revision: String(rev), ...extra });
        const y = await rawS.call<RangeResp>('KV', 'Range', { key: Buffer.from(PREFIX), range_end: Buffer.from(END), revision: String(rev), ...extra });
        assert.deepEqual({ kvs: y.kvs, more: y.more, count: y.count }, { kvs: x.kvs, more: x.more, count: x.count }, `${JSON.stringify(extra)} at ${rev}`);
      }
      const one = a.kvs[Math.floor(r() * a.kvs.length)];
      if (one) {
        const x = await rawP.call<RangeResp>('KV', 'Range', { key: one.key, revision: String(rev) });
        const y = await rawS.call<RangeResp>('KV', 'Range', { key: one.key, revision: String(rev) });
        assert.deepEqual(y.kvs, x.kvs);
      }
      compared++;
    }
    // A serializable head read: nothing is written meanwhile, so the standby is at the head.
    const x = await rawP.call<RangeResp>('KV', 'Range', { key: Buffer.from(PREFIX), range_end: Buffer.from(END) });
    const y = await rawS.call<RangeResp>('KV', 'Range', { key: Buffer.from(PREFIX), range_end: Buffer.from(END), serializable: true });
    assert.deepEqual({ rev: y.header.revision, kvs: y.kvs, count: y.count }, { rev: x.header.revision, kvs: x.kvs, count: x.count });
    // Watch catch-up from old revisions (s's ring starts at its start: these read kv_log).
    for (const from of [revisions[0]!, revisions[Math.floor(revisions.length / 2)]!]) {
      const got: string[][] = [];
      for (const raw of [rawP, rawS]) {
        const w = new RawWatch(raw);
        const c = await w.watch({ key: Buffer.from(PREFIX), range_end: Buffer.from(END), start_revision: String(from), prev_kv: true });
        const want = head - from + 1;
        const seen: string[] = [];
        const revs = new Set<string>();
        while (revs.size < want) {
          const resp: WResp = await w.next(30_000);
          if (resp.watch_id !== c.watch_id) continue;
          assert.ok(!resp.canceled, resp.cancel_reason);
          for (const e of resp.events) {
            revs.add(e.kv.mod_revision);
            seen.push(`${e.type} ${e.kv.mod_revision} ${e.kv.key.toString()} ${e.kv.value.length} ${e.prev_kv?.mod_revision ?? '-'}`);
          }
        }
        w.close();
        got.push(seen);
      }
      assert.deepEqual(got[1], got[0], `watch from ${from}`);
    }
    const after = stats(s);
    t.diagnostic(`${compared} revisions compared; standby served ${after.served - before} reads, ${after.behind} behind, ${after.failed} failed`);
    // Every list page, range, serializable read and catch-up read above went to the standby.
    assert.ok(after.served - before >= compared * 6, `the standby served the reads (${after.served - before})`);
  });

  it('with the head cache on as well, answers still equal the primary\'s (the cache answers first, the standby what it cannot)', { timeout: 180_000 }, async () => {
    const c = await startServer({ databaseUrl: cluster.primary.url('pgetcd'), readEndpoint: [cluster.standbys[0]!.url('pgetcd')], readMaxLag: MAX_LAG_MS, cacheMaxBytes: 64 * 1024 * 1024 });
    const rawC = rawClients(c.endpoint);
    try {
      await until('the standby is up for the cached instance', () => stats(c).up);
      await until('the head cache is loaded', () => (c.app.store.cacheStats()?.revision ?? -1) >= revisions.at(-1)!);
      for (const rev of [revisions[0]!, revisions[Math.floor(revisions.length / 2)]!, revisions.at(-1)!]) {
        for (const serializable of [false, true]) {
          const a = await list(rawP, rev);
          const b = await list(rawC, rev, { serializable });
          assert.deepEqual(b.kvs, a.kvs, `list at ${rev}, serializable ${serializable}`);
          assert.equal(b.first.count, a.first.count);
        }
      }
      const x = await rawP.call<RangeResp>('KV', 'Range', { key: Buffer.from(PREFIX), range_end: Buffer.from(END) });
      const y = await rawC.call<RangeResp>('KV', 'Range', { key: Buffer.from(PREFIX), range_end: Buffer.from(END), serializable: true });
      assert.deepEqual({ kvs: y.kvs, count: y.count }, { kvs: x.kvs, count: x.count });
      assert.ok(c.app.store.cacheStats()!.hits > 0, 'the head cache answered some of them');
    } finally {
      rawC.close();
      await c.stop();
    }
  });

  it('a standby whose replay is paused falls behind --read-max-lag and the primary answers; it takes reads again once resumed', { timeout: 180_000 }, async (t) => {
    const standby = cluster.standbys[0]!.sql('pgetcd');
    try {
      await standby`SELECT pg_wal_replay_pause()`;
      const put = await rawS.call<RangeResp>('KV', 'Put', { key: Buffer.from(`${PREFIX}lag`), value: Buffer.from('1') });
      const rev = Number(put.header.revision);
      // A read at the new revision: right away the standby may still be fresh, has not replayed
      // it, and sends it on to the primary; later the standby is skipped. Either way: the answer.
      const r0 = await rawS.call<RangeResp>('KV', 'Range', { key: Buffer.from(`${PREFIX}lag`), revision: String(rev) });
      assert.equal(r0.kvs[0]?.value.toString(), '1');
      await until('the standby counts as lagging', () => stats(s).lagMs > MAX_LAG_MS, 30_000);
      const served = stats(s).served;
      for (let i = 0; i < 20; i++) {
        const w = await rawS.call<RangeResp>('KV', 'Put', { key: Buffer.from(`${PREFIX}lag`), value: Buffer.from(String(i)) });
        const sr = await rawS.call<RangeResp>('KV', 'Range', { key: Buffer.from(`${PREFIX}lag`), serializable: true });
        assert.equal(sr.header.revision, w.header.revision, 'a serializable read no longer comes from the paused standby');
        assert.equal(sr.kvs[0]!.value.toString(), String(i));
        const pr = await rawS.call<RangeResp>('KV', 'Range', { key: Buffer.from(PREFIX), range_end: Buffer.from(END), revision: w.header.revision, count_only: true });
        assert.equal(pr.header.revision, w.header.revision);
      }
      assert.equal(stats(s).served, served, 'no read went to the lagging standby');
      t.diagnostic(`paused standby: lag ${stats(s).lagMs} ms, ${stats(s).behindRevisions} revisions; ${stats(s).behind} reads sent on because it lacked their revision`);
    } finally {
      await standby`SELECT pg_wal_replay_resume()`.catch(() => undefined);
      await standby.end();
    }
    await until('the standby catches up', () => stats(s).lagMs === 0 && stats(s).up, 60_000);
    const served = stats(s).served;
    await rawS.call<RangeResp>('KV', 'Range', { key: Buffer.from(PREFIX), range_end: Buffer.from(END), serializable: true, count_only: true });
    assert.equal(stats(s).served, served + 1, 'the standby takes reads again');
  });

  it('a standby stopped mid-load: readers see no error; it takes reads again after a restart', { timeout: 240_000 }, async (t) => {
    let stop = false;
    const errors: string[] = [];
    let reads = 0;
    let writes = 0;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        await rawP.call('KV', 'Put', { key: Buffer.from(`${PREFIX}load/${i % 50}`), value: Buffer.from(String(i)) });
        writes++;
      }
    })();
    const readers = Array.from({ length: 4 }, async (_, n) => {
      while (!stop) {
        try {
          if (n % 2 === 0) await rawS.call('KV', 'Range', { key: Buffer.from(PREFIX), range_end: Buffer.from(END), serializable: true, limit: 100 });
          else {
            const h = await rawS.call<RangeResp>('KV', 'Range', { key: Buffer.from(PREFIX), range_end: Buffer.from(END), limit: 100 });
            await list(rawS, Number(h.header.revision));
          }
          reads++;
        } catch (err) {
          const e = err as { code?: number; details?: string };
          errors.push(`${e.code} ${e.details}`);
        }
      }
    });
    try {
      await until('the standby serves under load', () => stats(s).served > 50, 60_000);
      await cluster.standbys[0]!.stop();
      const stoppedAt = reads;
      await until('reads continue without the standby', () => reads > stoppedAt + 50 && !stats(s).up, 60_000);
      await cluster.standbys[0]!.start();
      await until('the standby is back', () => stats(s).up && stats(s).lagMs === 0, 120_000);
      const served = stats(s).served;
      await until('the standby serves again', () => stats(s).served > served + 20, 60_000);
    } finally {
      stop = true;
      await Promise.all(readers);
      await writer;
    }
    t.diagnostic(`${reads} reads, ${writes} writes, standby: ${JSON.stringify(stats(s))}; client errors: ${errors.length}`);
    assert.deepEqual(errors, [], 'no read failed while the standby went away and came back');
  });
});
