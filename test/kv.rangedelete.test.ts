/**
 * A DeleteRange over many keys of one kind, alone in its batch, has its log rows made by
 * PostgreSQL from kv_current (writer.ts, wholeRangeDelete) instead of sent as parameters. The
 * rows must be exactly those the writer would have sent: the writing instance delivers its
 * watch events from its own rows, the other instance reads them back from kv_log, and both
 * streams, the answers, history and the store's consistency check must agree.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type postgres from 'postgres';
import { sqlFor } from './helpers/db.ts';
import { startPair, type ServerPair } from './helpers/server.ts';
import { RawWatch, type WResp } from './helpers/watch.ts';
import { WHOLE_RANGE_MIN_ROWS } from '../src/store/writer.ts';

const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const N = WHOLE_RANGE_MIN_ROWS + 44;

type Ev = WResp['events'][number];

function summary(e: Ev): string {
  const p = e.prev_kv;
  return [e.type, e.kv.key.toString('latin1'), e.kv.mod_revision, e.kv.version, e.kv.value.length,
    p ? `${p.key.toString('latin1')}@${p.mod_revision}/${p.create_revision}/v${p.version}/${p.value.toString('latin1')}/${p.lease}` : '-'].join(' ');
}

async function collect(w: RawWatch, n: number): Promise<Ev[]> {
  const out: Ev[] = [];
  while (out.length < n) out.push(...(await w.next()).events);
  return out;
}

describe('DeleteRange whose rows PostgreSQL makes', () => {
  let pair: ServerPair;
  let sql: postgres.Sql;
  before(async () => {
    pair = await startPair();
    sql = sqlFor(pair.a.databaseUrl);
  });
  after(async () => {
    await sql.end();
    await pair.stop();
  });

  const fill = async (prefix: string, n: number): Promise<Map<string, string>> => {
    const values = new Map<string, string>();
    // Out of key order, some keys written twice, through both instances.
    for (let i = n - 1; i >= 0; i--) {
      const k = `${prefix}${String(i).padStart(4, '0')}`;
      const v = `v${i}`.padEnd(20 + (i % 50), '.');
      await (i % 2 ? pair.rawA : pair.rawB).call('KV', 'Put', { key: B(k), value: B(v) });
      values.set(k, v);
    }
    for (let i = 0; i < n; i += 7) {
      const k = `${prefix}${String(i).padStart(4, '0')}`;
      await pair.rawA.call('KV', 'Put', { key: B(k), value: B(`again${i}`) });
      values.set(k, `again${i}`);
    }
    return values;
  };

  it('gives both instances the same events, in key order, with every prev_kv, and history stays exact', async () => {
    const prefix = '/registry/pods/ns1/';
    const values = await fill(prefix, N);
    // A key just outside the range stays.
    await pair.rawA.call('KV', 'Put', { key: B('/registry/pods/ns10'), value: B('stays') });
    const wa = new RawWatch(pair.rawA);
    const wb = new RawWatch(pair.rawB);
    try {
      await wa.watch({ key: B(prefix), range_end: B('/registry/pods/ns10'), prev_kv: true });
      await wb.watch({ key: B(prefix), range_end: B('/registry/pods/ns10'), prev_kv: true });
      const stats = pair.a.app.store.writer.stats;
      const whole0 = stats.wholeRangeDeletes;
      const before = Number((await pair.rawA.call('KV', 'Range', { key: B('x') })).header.revision);

      const del = await pair.rawA.call('KV', 'DeleteRange', { key: B(prefix), range_end: B('/registry/pods/ns10'), prev_kv: true });
      assert.equal(Number(del.deleted), N);
      assert.equal(stats.wholeRangeDeletes, whole0 + 1, 'the delete took the whole-range path');
      const rev = Number(del.header.revision);
      assert.equal(rev, before + 1);
      const keys = [...values.keys()].sort();
      assert.deepEqual(del.prev_kvs.map((kv: any) => kv.key.toString('latin1')), keys);
      assert.deepEqual(del.prev_kvs.map((kv: any) => kv.value.toString('latin1')), keys.map((k) => values.get(k)));

      const [ea, eb] = await Promise.all([collect(wa, N), collect(wb, N)]);
      assert.deepEqual(ea.map(summary), eb.map(summary));
      assert.deepEqual(ea.map((e) => e.kv.key.toString('latin1')), keys);
      for (const e of ea) {
        assert.equal(e.type, 1);
        assert.equal(Number(e.kv.mod_revision), rev);
        assert.equal(e.prev_kv!.value.toString('latin1'), values.get(e.kv.key.toString('latin1')));
      }

      // The rows as stored: one revision, subs in key order, the keys' partition.
      const rows = await sql<Array<{ sub: number; key: Buffer; kind: string; prev: string; deleted: boolean; value: Buffer }>>`
        SELECT sub, key, kind, prev_revision::text AS prev, deleted, value FROM kv_log WHERE mod_revision = ${rev} ORDER BY sub`;
      assert.deepEqual(rows.map((r) => r.sub), keys.map((_, i) => i));
      assert.deepEqual(rows.map((r) => r.key.toString('latin1')), keys);
      assert.ok(rows.every((r) => r.kind === 'pods' && r.deleted && r.value.length === 0));
      assert.deepEqual(rows.map((r) => Number(r.prev)), ea.map((e) => Number(e.prev_kv!.mod_revision)));

      // History on the other instance: everything before the delete, nothing after it.
      const old = await pair.rawB.call('KV', 'Range', { key: B(prefix), range_end: B('/registry/pods/ns10'), revision: rev - 1 });
      assert.equal(Number(old.count), N);
      for (const raw of [pair.rawA, pair.rawB]) {
        const now = await raw.call('KV', 'Range', { key: B('/registry/pods/'), range_end: B('/registry/pods0') });
        assert.deepEqual(now.kvs.map((kv: any) => kv.key.toString('latin1')), ['/registry/pods/ns10']);
      }
    } finally {
      wa.close();
      wb.close();
    }
  });

  it('a delete over several kinds sends its rows as before, with the same results', async () => {
    const stats = pair.a.app.store.writer.stats;
    const cms = await fill('/registry/configmaps/ns2/', N);
    const secrets = await fill('/registry/secrets/ns2/', 20);
    const all = new Map([...cms, ...secrets, ['/registry/pods/ns10', 'stays']]);
    const wb = new RawWatch(pair.rawB);
    try {
      await wb.watch({ key: B('/registry/'), range_end: B('\0'), prev_kv: true });
      const whole0 = stats.wholeRangeDeletes;
      const mixed = await pair.rawA.call('KV', 'DeleteRange', { key: B('/registry/configmaps/ns2/'), range_end: B('/registry/secrets/ns2/0010') });
      assert.equal(Number(mixed.deleted), N + 1 + 10);
      assert.equal(stats.wholeRangeDeletes, whole0, 'configmaps, pods and secrets: not one kind');
      const rest = await pair.rawA.call('KV', 'DeleteRange', { key: B('/registry/'), range_end: B('\0') });
      assert.equal(Number(rest.deleted), 10);
      const events = await collect(wb, N + 1 + 20);
      const keys = [...all.keys()].sort();
      assert.deepEqual(events.map((e) => e.kv.key.toString('latin1')), [...keys.slice(0, N + 11), ...keys.slice(N + 11)]);
      for (const [i, e] of events.entries()) {
        const k = e.kv.key.toString('latin1');
        assert.equal(e.type, 1);
        assert.equal(Number(e.kv.mod_revision), Number((i < N + 11 ? mixed : rest).header.revision));
        assert.equal(e.prev_kv!.value.toString('latin1'), all.get(k), k);
      }
      const left = await pair.rawB.call('KV', 'Range', { key: B('/registry/'), range_end: B('\0'), count_only: true });
      assert.equal(Number(left.count), 0);
    } finally {
      wb.close();
    }
  });

  it('the largest single-kind delete without an end takes the whole-range path', async () => {
    const stats = pair.a.app.store.writer.stats;
    const values = await fill('zz/', N);
    const whole0 = stats.wholeRangeDeletes;
    const del = await pair.rawA.call('KV', 'DeleteRange', { key: B('zz/'), range_end: B('\0') });
    assert.equal(Number(del.deleted), values.size);
    assert.equal(stats.wholeRangeDeletes, whole0 + 1);
    const left = await pair.rawB.call('KV', 'Range', { key: B('zz/'), range_end: B('\0') });
    assert.equal(left.kvs.length, 0);
  });
});
