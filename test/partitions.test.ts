import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSql, type Sql } from '../src/db/sql.ts';
import { targetFromUrl } from '../src/db/target.ts';
import { addPartition, listPartitions, removePartition, resolveKind, setPartitionOptions } from '../src/ops/partitions.ts';
import { runPgetcd } from './helpers/cli.ts';
import { sqlFor } from './helpers/db.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { startServer } from './helpers/server.ts';
import { RawWatch } from './helpers/watch.ts';
import { rng } from './helpers/seed.ts';

const W = '/registry/example.com/widgets/';
const KIND = 'example.com/widgets';

const b = (s: string): Buffer => Buffer.from(s);
const end = (prefix: string): Buffer => { const e = b(prefix); e[e.length - 1]! += 1; return e; };

interface Snapshot { [k: string]: string }

/** The whole key space (or one prefix) at a revision, as key -> value@mod/version. */
async function read(raw: Raw, revision: number, prefix?: string): Promise<Snapshot> {
  const r = await raw.call('KV', 'Range', prefix ? { key: b(prefix), range_end: end(prefix), revision } : { key: b('\0'), range_end: b('\0'), revision });
  const out: Snapshot = {};
  for (const kv of r.kvs) out[kv.key.toString()] = `${kv.value.toString()}@${kv.mod_revision}/${kv.version}/${kv.create_revision}`;
  return out;
}

async function partitionsInPlan(sql: Sql, query: string, params: unknown[]): Promise<string[]> {
  const rows = (await sql.unsafe(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ${query}`, params as never[])) as unknown as Array<Record<string, string>>;
  const plan = rows.map((r) => Object.values(r)[0]).join('\n');
  return [...new Set([...plan.matchAll(/ on (kv_log_\w+)/g)].map((m) => m[1]!))].sort();
}

describe('partitions', () => {
  it('resolveKind takes a kind or exactly one kind\'s prefix', () => {
    assert.deepEqual(resolveKind('pods'), { kind: 'pods', prefix: b('/registry/pods/') });
    assert.equal(resolveKind('/registry/example.com/widgets').kind, KIND);
    assert.equal(resolveKind('endpoints').prefix.toString(), '/registry/services/endpoints/');
    assert.throws(() => resolveKind('/app/config/'), /not the key prefix of one resource type/);
    assert.throws(() => resolveKind('/registry/'), /not the key prefix of one resource type/);
    assert.throws(() => resolveKind('two words'), /not a resource type/);
  });

  it('add moves a kind out of DEFAULT while 50 writers and a watcher run; nothing lost, duplicated or reordered; remove folds it back', async () => {
    const seed = Number(process.env.PGETCD_TEST_SEED ?? Date.now() % 1_000_000);
    console.log(`partitions test seed ${seed} (PGETCD_TEST_SEED=${seed} repeats it)`);
    const rand = rng(seed);
    const s = await startServer();
    const raw = rawClients(s.endpoint);
    const one = createSql(targetFromUrl(s.databaseUrl), { max: 1 });
    const look = sqlFor(s.databaseUrl);
    try {
      // History in DEFAULT: widgets (the kind to move), other CRDs and plain keys, with
      // overwrites and deletes; pods live in their own partition already.
      const keyOf = (i: number): string => {
        const r = i % 4;
        return r === 0 ? `${W}ns/w${i % 60}` : r === 1 ? `/registry/example.com/gadgets/ns/g${i % 40}` : r === 2 ? `/app/k${i % 30}` : `/registry/pods/ns/p${i % 20}`;
      };
      for (let i = 0; i < 600; i++) {
        const key = keyOf(Math.floor(rand() * 1000));
        if (rand() < 0.1) await raw.call('KV', 'DeleteRange', { key: b(key) });
        else await raw.call('KV', 'Put', { key: b(key), value: b(`v${i}`) });
      }
      const r0 = Number((await raw.call('KV', 'Range', { key: b('x') })).header.revision);
      const before = await read(raw, 0);
      const past = Math.floor(r0 / 2);
      const beforePast = await read(raw, past);
      const beforeWidgets = await read(raw, past, W);

      const watch = new RawWatch(raw);
      await watch.watch({ key: b('\0'), range_end: b('\0'), start_revision: r0 + 1 });
      let stop = false;
      const acked: Array<{ key: string; value: string; rev: number }> = [];
      const writers = Array.from({ length: 50 }, (_, w) => (async () => {
        for (let i = 0; !stop; i++) {
          const key = w % 2 === 0 ? `${W}live/w${w}` : `/app/live/w${w}`;
          const value = `${w}.${i}`;
          const r = await raw.call('KV', 'Put', { key: b(key), value: b(value) });
          acked.push({ key, value, rev: Number(r.header.revision) });
        }
      })());
      await new Promise((r) => setTimeout(r, 300));
      const report = await addPartition(one, KIND, { batchRows: 200 });
      await new Promise((r) => setTimeout(r, 300));
      stop = true;
      await Promise.all(writers);

      assert.equal(report.table, 'kv_log_example_com_widgets');
      assert.ok(report.rowsMoved > 0);
      const [inDefault] = await look`SELECT count(*)::int AS n FROM kv_log_default WHERE kind = ${KIND}`;
      assert.equal(inDefault!.n, 0, 'no widget row is left in DEFAULT');
      const [inPart] = await look`SELECT count(*)::int AS n, count(*) FILTER (WHERE kind <> ${KIND})::int AS other FROM kv_log_example_com_widgets`;
      assert.equal(inPart!.other, 0);
      assert.ok(inPart!.n >= report.rowsMoved);
      const [m] = await look`SELECT table_name, origin FROM kv_partitions WHERE kind = ${KIND}`;
      assert.deepEqual({ ...m }, { table_name: 'kv_log_example_com_widgets', origin: 'add' });

      // The watcher saw every acknowledged put, once, in revision order.
      const last = Math.max(...acked.map((a) => a.rev));
      const seen: Array<{ key: string; value: string; rev: number }> = [];
      while (seen.length === 0 || seen[seen.length - 1]!.rev < last) {
        const r = await watch.next(30_000);
        for (const e of r.events) seen.push({ key: e.kv.key.toString(), value: e.kv.value.toString(), rev: Number(e.kv.mod_revision) });
      }
      assert.deepEqual(seen.map((e) => e.rev), Array.from({ length: last - r0 }, (_, i) => r0 + 1 + i), 'one event per revision, none missing, none repeated, in order');
      const byRev = new Map(seen.map((e) => [e.rev, e]));
      for (const a of acked) assert.deepEqual(byRev.get(a.rev), a);
      watch.stream.end();

      // Every key reads as before, at the head and in the past.
      const after = await read(raw, 0);
      for (const [k, v] of Object.entries(before)) if (!k.includes('/live/')) assert.equal(after[k], v, k);
      assert.deepEqual(await read(raw, past), beforePast);
      assert.deepEqual(await read(raw, past, W), beforeWidgets);

      // One partition in the plan for a list of one kind: head, historical, watch catch-up.
      const wk = b(W);
      const we = end(W);
      assert.deepEqual(await partitionsInPlan(look, 'SELECT key FROM kv_log WHERE key >= $1 AND key < $2 AND kind = $3 AND mod_revision > $4', [wk, we, KIND, past]), ['kv_log_example_com_widgets']);

      const rm = await removePartition(one, KIND, { batchRows: 300 });
      assert.equal(rm.rowsMoved, inPart!.n);
      const [gone] = await look`SELECT to_regclass('kv_log_example_com_widgets') AS t, (SELECT count(*)::int FROM kv_partitions WHERE kind = ${KIND}) AS mapped`;
      assert.deepEqual({ ...gone }, { t: null, mapped: 0 });
      assert.deepEqual(await read(raw, 0), after);
      assert.deepEqual(await read(raw, past), beforePast);
    } finally {
      raw.close();
      await one.end();
      await look.end();
      await s.stop();
    }
  });

  it('partitions list, add, set and remove through the binary', async () => {
    const s = await startServer();
    const raw = rawClients(s.endpoint);
    try {
      for (let i = 0; i < 30; i++) await raw.call('KV', 'Put', { key: b(`/registry/crontabs/ns/c${i % 10}`), value: b(`${i}`) });
      await raw.call('KV', 'DeleteRange', { key: b('/registry/crontabs/ns/c0') });
      const add = await runPgetcd(['partitions', 'add', '/registry/crontabs/', '--endpoint', s.databaseUrl, '-o', 'json']);
      assert.equal(add.code, 0, add.stderr);
      assert.equal(JSON.parse(add.stdout).rowsMoved, 31);
      const again = await runPgetcd(['partitions', 'add', 'crontabs', '--endpoint', s.databaseUrl]);
      assert.equal(again.code, 1);
      assert.equal(again.stderr, 'pgetcd partitions: crontabs already has partition kv_log_crontabs\n');
      const set = await runPgetcd(['partitions', 'set', 'crontabs', 'fillfactor=90', 'autovacuum_vacuum_scale_factor=0.01', '--endpoint', s.databaseUrl]);
      assert.equal(set.code, 0, set.stderr);
      const bad = await runPgetcd(['partitions', 'set', 'crontabs', 'work_mem=1', '--endpoint', s.databaseUrl]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^pgetcd partitions: work_mem is not a setting partitions set changes/);
      const list = await runPgetcd(['partitions', 'list', '--endpoint', s.databaseUrl, '-o', 'json']);
      const parts = JSON.parse(list.stdout) as Array<{ table: string; kind: string | null; liveKeys: number; historyRows: number; tombstones: number; settings: string[] }>;
      const c = parts.find((p) => p.kind === 'crontabs')!;
      assert.deepEqual({ live: c.liveKeys, rows: c.historyRows, tomb: c.tombstones }, { live: 9, rows: 31, tomb: 1 });
      assert.deepEqual(c.settings, ['fillfactor=90', 'autovacuum_vacuum_scale_factor=0.01']);
      assert.equal(parts[parts.length - 1]!.table, 'kv_log_default');
      assert.ok(parts.some((p) => p.kind === 'pods'));
      const human = await runPgetcd(['partitions', 'list', '--endpoint', s.databaseUrl]);
      assert.match(human.stdout, /^TABLE +KIND +PREFIX +LIVE_KEYS/);
      assert.match(human.stdout, /\nkv_log_crontabs +crontabs +\/registry\/crontabs\/ +9 +31 +1 /);
      const rm = await runPgetcd(['partitions', 'remove', 'crontabs', '--endpoint', s.databaseUrl]);
      assert.equal(rm.code, 0, rm.stderr);
      assert.match(rm.stdout, /^removed partition kv_log_crontabs for crontabs: 31 rows/);
      const r = await raw.call('KV', 'Range', { key: b('/registry/crontabs/'), range_end: end('/registry/crontabs/') });
      assert.equal(r.kvs.length, 9);
    } finally {
      raw.close();
      await s.stop();
    }
  });

  it('set changes the default partition and keeps it across an add', async () => {
    const s = await startServer();
    const one = createSql(targetFromUrl(s.databaseUrl), { max: 1 });
    try {
      await setPartitionOptions(one, 'default', { autovacuum_vacuum_scale_factor: '0.05' }, []);
      await addPartition(one, 'gizmos');
      const parts = await listPartitions(one);
      assert.deepEqual(parts.find((p) => p.table === 'kv_log_default')!.settings, ['autovacuum_vacuum_scale_factor=0.05']);
    } finally {
      await one.end();
      await s.stop();
    }
  });
});
