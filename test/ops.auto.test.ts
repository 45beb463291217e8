import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSql } from '../src/db/sql.ts';
import { targetFromUrl } from '../src/db/target.ts';
import { createLogger } from '../src/log.ts';
import { AutoCompactor, parseRetention, periodicIntervals } from '../src/ops/autocompact.ts';
import { addPartition } from '../src/ops/partitions.ts';
import { PartitionMap } from '../src/store/partitionmap.ts';
import { runPgetcd } from './helpers/cli.ts';
import { sqlFor } from './helpers/db.ts';
import { expectGrpcError, rawClients, type Raw } from './helpers/raw.ts';
import { freePort, startServer } from './helpers/server.ts';
import { waitFor } from './helpers/wait.ts';

const log = createLogger('silent');
const b = (s: string): Buffer => Buffer.from(s);

async function compactRevision(url: string): Promise<number> {
  const sql = sqlFor(url);
  try {
    const [m] = await sql`SELECT compact_revision::int AS c FROM meta`;
    return m!.c as number;
  } finally {
    await sql.end();
  }
}

describe('auto-compaction (etcd --auto-compaction-mode/--auto-compaction-retention)', () => {
  it('retention reads as etcd reads it: a bare number is hours in periodic mode, revisions in revision mode', () => {
    assert.deepEqual(parseRetention('periodic', '1'), { mode: 'periodic', retention: 3_600_000 });
    assert.deepEqual(parseRetention('periodic', '30m'), { mode: 'periodic', retention: 1_800_000 });
    assert.deepEqual(parseRetention('periodic', '1h30m'), { mode: 'periodic', retention: 5_400_000 });
    assert.equal(parseRetention('periodic', '0'), undefined);
    assert.deepEqual(parseRetention('revision', '1000'), { mode: 'revision', retention: 1000 });
    assert.equal(parseRetention('revision', '0'), undefined);
    assert.throws(() => parseRetention('revision', '1h'), /not a revision count/);
    assert.throws(() => parseRetention('periodic', 'soon'), /not a duration/);
  });

  it('periodic mode compacts every min(retention, 1h), sampling every tenth of that', () => {
    assert.deepEqual(periodicIntervals(10 * 60_000), { compactEvery: 600_000, sampleEvery: 60_000, samples: 11 });
    assert.deepEqual(periodicIntervals(2 * 3_600_000), { compactEvery: 3_600_000, sampleEvery: 360_000, samples: 21 });
  });

  it('a bad retention is one line and exit 2', async () => {
    const r = await runPgetcd(['--endpoint', 'postgres://nobody@127.0.0.1:1/x', '--listen-client-urls', `http://127.0.0.1:${await freePort()}`,
      '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '1h']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, 'pgetcd: --auto-compaction-retention: "1h" is not a revision count\n');
  });

  it('revision mode: one elected instance compacts at current - retention; another takes over when it stops', async () => {
    const s = await startServer();
    const raw = rawClients(s.endpoint);
    const mk = (): AutoCompactor => new AutoCompactor({
      policy: { mode: 'revision', retention: 5 },
      revision: async () => (await s.app.store.currentRevision()).revision,
      compact: async (rev) => { await s.app.store.compact(rev, false); },
      connect: () => createSql(targetFromUrl(s.databaseUrl), { max: 1 }),
      log,
      intervals: { revisionEvery: 100 },
    });
    const a = mk();
    const c = mk();
    try {
      for (let i = 0; i < 20; i++) await raw.call('KV', 'Put', { key: b(`k${i % 3}`), value: b(`${i}`) });
      const rev = (await s.app.store.currentRevision()).revision;
      a.start();
      await waitFor('first compaction', async () => ((await compactRevision(s.databaseUrl)) === rev - 5 ? true : undefined));
      c.start();
      await new Promise((r) => setTimeout(r, 400));
      assert.deepEqual([a.isLeader(), c.isLeader()], [true, false], 'one leader');
      await a.stop();
      for (let i = 0; i < 10; i++) await raw.call('KV', 'Put', { key: b(`k${i % 3}`), value: b(`${i}`) });
      const rev2 = (await s.app.store.currentRevision()).revision;
      await waitFor('takeover', async () => ((await compactRevision(s.databaseUrl)) === rev2 - 5 ? true : undefined));
      assert.equal(c.isLeader(), true);
      await expectGrpcError(raw.call('KV', 'Range', { key: b('k0'), revision: rev2 - 6 }), 11, 'etcdserver: mvcc: required revision has been compacted');
    } finally {
      await a.stop();
      await c.stop();
      raw.close();
      await s.stop();
    }
  });

  it('kube-apiserver\'s compaction loop (Txn on compact_rev_key, then Compact) keeps working beside auto-compaction', async () => {
    const s = await startServer();
    const raw = rawClients(s.endpoint);
    const auto = new AutoCompactor({
      policy: { mode: 'revision', retention: 20 },
      revision: async () => (await s.app.store.currentRevision()).revision,
      compact: async (rev) => { await s.app.store.compact(rev, false); },
      connect: () => createSql(targetFromUrl(s.databaseUrl), { max: 1 }),
      log,
      intervals: { revisionEvery: 50 },
    });
    // k8s.io/apiserver storage/etcd3/compact.go: each apiserver runs this every interval; the one
    // whose Txn succeeds compacts at the revision it saw one interval earlier.
    const KEY = b('compact_rev_key');
    const apiserver = async (raw: Raw, t: number, rev: number): Promise<{ t: number; rev: number; compacted: boolean; error?: string }> => {
      const resp = await raw.call('KV', 'Txn', {
        compare: [{ key: KEY, target: 'VERSION', result: 'EQUAL', version: t }],
        success: [{ request_put: { key: KEY, value: b(String(rev)) } }],
        failure: [{ request_range: { key: KEY } }],
      });
      const curRev = Number(resp.header.revision);
      if (!resp.succeeded) return { t: Number(resp.responses[0].response_range.kvs[0].version), rev: curRev, compacted: false };
      if (rev === 0) return { t: t + 1, rev: curRev, compacted: false };
      try {
        await raw.call('KV', 'Compact', { revision: rev });
        return { t: t + 1, rev: curRev, compacted: true };
      } catch (err) {
        // The apiserver logs the error and tries again next interval.
        return { t: t + 1, rev: curRev, compacted: false, error: (err as { details?: string }).details };
      }
    };
    try {
      auto.start();
      const states = [{ t: 0, rev: 0 }, { t: 0, rev: 0 }];
      let compactions = 0;
      const errors: string[] = [];
      for (let round = 0; round < 6; round++) {
        for (let i = 0; i < 15; i++) await raw.call('KV', 'Put', { key: b(`/registry/pods/ns/p${i}`), value: b(`${round}`) });
        for (const st of states) {
          const r = await apiserver(raw, st.t, st.rev);
          st.t = r.t;
          st.rev = r.rev;
          if (r.compacted) compactions++;
          if (r.error) errors.push(r.error);
        }
      }
      assert.ok(compactions >= 3, `the apiservers compacted ${compactions} times`);
      for (const e of errors) assert.equal(e, 'etcdserver: mvcc: required revision has been compacted');
      const kv = (await raw.call('KV', 'Range', { key: KEY })).kvs[0];
      assert.equal(Number(kv.version), Math.max(states[0]!.t, states[1]!.t), 'compact_rev_key counts the rounds won');
      const c = await compactRevision(s.databaseUrl);
      assert.ok(c >= (await s.app.store.currentRevision()).revision - 40, 'auto-compaction ran too');
    } finally {
      await auto.stop();
      raw.close();
      await s.stop();
    }
  });
});

describe('partition map cache and --auto-partition', () => {
  it('every instance\'s copy of the map follows a change (NOTIFY)', async () => {
    const s = await startServer();
    const one = createSql(targetFromUrl(s.databaseUrl), { max: 1 });
    const other = createSql(targetFromUrl(s.databaseUrl), { max: 2 });
    const map = new PartitionMap(other, log);
    try {
      await map.start();
      assert.equal(map.has('pods'), true);
      assert.equal(map.has('example.com/foos'), false);
      await addPartition(one, 'example.com/foos');
      await waitFor('map reload', async () => (map.has('example.com/foos') ? true : undefined), 10_000);
    } finally {
      await map.stop();
      await other.end();
      await one.end();
      await s.stop();
    }
  });

  it('a kind gets its own partition once it passes --auto-partition-rows', async () => {
    const s = await startServer({ autoPartition: true, autoPartitionRows: 40 });
    const raw = rawClients(s.endpoint);
    const look = sqlFor(s.databaseUrl);
    try {
      for (let i = 0; i < 30; i++) await raw.call('KV', 'Put', { key: b(`/registry/stable.example.com/crons/ns/c${i % 7}`), value: b(`${i}`) });
      for (let i = 0; i < 60; i++) await raw.call('KV', 'Put', { key: b(`/app/${i}`), value: b(`${i}`) });
      const [none] = await look`SELECT count(*)::int AS n FROM kv_partitions WHERE kind = 'stable.example.com/crons'`;
      assert.equal(none!.n, 0, 'below the threshold: no partition');
      for (let i = 30; i < 45; i++) await raw.call('KV', 'Put', { key: b(`/registry/stable.example.com/crons/ns/c${i % 7}`), value: b(`${i}`) });
      const p = await waitFor('auto partition', async () => {
        const [r] = await look`SELECT table_name, origin FROM kv_partitions WHERE kind = 'stable.example.com/crons'`;
        return r ? { ...r } : undefined;
      }, 30_000);
      assert.deepEqual(p, { table_name: 'kv_log_stable_example_com_crons', origin: 'auto' });
      const [rows] = await look`SELECT count(*)::int AS n FROM kv_log_stable_example_com_crons`;
      assert.ok(rows!.n >= 45);
      const [left] = await look`SELECT count(*)::int AS n FROM kv_log_default WHERE kind = 'stable.example.com/crons'`;
      assert.equal(left!.n, 0);
      const r = await raw.call('KV', 'Range', { key: b('/registry/stable.example.com/crons/'), range_end: b('/registry/stable.example.com/crons0') });
      assert.equal(r.kvs.length, 7);
    } finally {
      raw.close();
      await look.end();
      await s.stop();
    }
  });
});
