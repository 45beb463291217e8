import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { migrate } from '../src/db/migrate.ts';
import { createSql } from '../src/db/sql.ts';
import { targetFromUrl } from '../src/db/target.ts';
import { createLogger } from '../src/log.ts';
import { addPartition } from '../src/ops/partitions.ts';
import { createTestDatabase, sqlFor } from './helpers/db.ts';
import { rawClients } from './helpers/raw.ts';
import { startServer } from './helpers/server.ts';

/** Every migration this checkout ships, in order (node-pg-migrate names them by file name). */
const MIGRATIONS = fs.readdirSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'migrations'))
  .filter((f) => f.endsWith('.sql')).map((f) => f.replace(/\.sql$/, '')).sort();

describe('migrations', () => {
  it('apply, roll back completely and apply again', async () => {
    const url = await createTestDatabase();
    const target = targetFromUrl(url);
    const log = createLogger('silent');
    const up = await migrate(target, log);
    assert.deepEqual(up, MIGRATIONS, 'a fresh database gets every migration, in order');
    const down = await migrate(target, log, 'down', Infinity);
    assert.equal(down.length, up.length);
    const sql = sqlFor(url);
    try {
      const [t] = await sql`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'pgmigrations'`;
      assert.equal(t!.n, 0, 'down migrations leave no tables behind');
      assert.deepEqual(await migrate(target, log), up);
      const parts = await sql`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'kv_log' ORDER BY 1`;
      assert.ok(parts.some((p) => p.relname === 'kv_log_pods'));
      assert.ok(parts.some((p) => p.relname === 'kv_log_default'));
      const [m] = await sql`SELECT revision::int, compact_revision::int FROM meta`;
      assert.deepEqual({ ...m }, { revision: 1, compact_revision: 0 });
    } finally {
      await sql.end();
    }
  });

  it('two instances migrating at once take turns', async () => {
    const url = await createTestDatabase();
    const target = targetFromUrl(url);
    const log = createLogger('silent');
    const [a, b] = await Promise.all([migrate(target, log), migrate(target, log)]);
    // Whichever got the lock first applied all of them; the other found nothing left to do.
    assert.deepEqual([a, b].filter((x) => x.length > 0), [MIGRATIONS], 'exactly one of them applied the migrations, all of them');
    assert.ok(a.length === 0 || b.length === 0);
    const sql = sqlFor(url);
    try {
      const rows = await sql`SELECT name FROM pgmigrations ORDER BY run_on, id`;
      assert.deepEqual(rows.map((r) => r.name), MIGRATIONS, 'each migration recorded once');
    } finally {
      await sql.end();
    }
  });

  it('up -> down -> up on a database with data: every down but three keeps the data; the destructive ones are named', async () => {
    // What each destructive down step loses. Every other down step must give back, after the
    // following up, exactly the rows and storage settings it found.
    const DESTRUCTIVE: Record<string, string> = {
      '1700000000000_kv-schema': 'every table: keys, history, leases, revision',
      '1700000000700_members': 'the instance registrations: MemberList misses a running instance until it restarts or reconnects',
      '1700000000800_alarms': 'active alarms: NOSPACE is raised again by the next write past the quota, CORRUPT must be raised again',
    };
    const url = await createTestDatabase();
    const target = targetFromUrl(url);
    const log = createLogger('silent');
    const s = await startServer({ databaseUrl: url });
    const raw = rawClients(s.endpoint);
    const b = (x: string): Buffer => Buffer.from(x);
    try {
      const lease = await raw.call('Lease', 'LeaseGrant', { TTL: 3600 });
      for (let i = 0; i < 20; i++) await raw.call('KV', 'Put', { key: b(`/registry/pods/ns/p${i % 7}`), value: b(`pod ${i}`) });
      for (let i = 0; i < 12; i++) await raw.call('KV', 'Put', { key: b(`/registry/example.com/widgets/ns/w${i % 5}`), value: b(`w ${i}`) });
      await raw.call('KV', 'Put', { key: b('/app/config'), value: b('c'), lease: lease.ID });
      await raw.call('KV', 'DeleteRange', { key: b('/registry/pods/ns/p3') });
      await raw.call('KV', 'Compact', { revision: 10, physical: true });
      const one = createSql(target, { max: 1 });
      try {
        await addPartition(one, 'example.com/widgets');
      } finally {
        await one.end();
      }
    } finally {
      raw.close();
      await s.stop();
    }

    const sql = sqlFor(url);
    const exists = async (t: string): Promise<boolean> => ((await sql`SELECT to_regclass(${t}) IS NOT NULL AS e`)[0]!.e as boolean);
    /** The rows of every table (and their storage settings), members apart. */
    const snapshot = async (): Promise<{ data: string; members: number }> => {
      const out: Record<string, unknown> = {};
      if (await exists('meta')) {
        out.meta = await sql`SELECT revision::text, compact_revision::text, cluster_id::text FROM meta`;
        out.compaction = await sql`SELECT physical_revision::text FROM compaction`;
        out.kv_log = await sql`SELECT tableoid::regclass::text AS part, mod_revision::text, sub, create_revision::text, prev_revision::text, version::text, lease::text, deleted, kind, encode(key, 'escape') AS key, encode(value, 'escape') AS value FROM kv_log ORDER BY mod_revision, sub`;
        out.kv_current = await sql`SELECT encode(key, 'escape') AS key, mod_revision::text, create_revision::text, version::text, lease::text, encode(value, 'escape') AS value FROM kv_current ORDER BY key`;
        out.leases = await sql`SELECT id::text, ttl::text FROM leases ORDER BY id`;
        out.settings = await sql`SELECT relname, reloptions FROM pg_class WHERE relname IN ('meta', 'kv_current', 'leases', 'kv_log_default', 'kv_log_example_com_widgets') ORDER BY relname`;
      }
      if (await exists('kv_partitions')) out.map = await sql`SELECT kind, table_name, encode(prefix, 'escape') AS prefix, origin FROM kv_partitions ORDER BY kind`;
      const members = (await exists('members')) ? ((await sql`SELECT count(*)::int AS n FROM members`)[0]!.n as number) : 0;
      return { data: JSON.stringify(out), members };
    };
    try {
      // A registration as a running instance leaves it (a stopped one removes its row).
      await sql`INSERT INTO members (id, name, client_urls, started_at, lock_key) VALUES (42, 'running', '{http://127.0.0.1:1}', now(), 7)`;
      const before = await snapshot();
      assert.equal(before.members, 1);
      assert.match(before.data, /"part":"kv_log_example_com_widgets"/, 'the added partition holds its rows');
      assert.match(before.data, /"origin":"add"/);
      const names = MIGRATIONS;
      let membersGone = false;
      // Undo the newest k migrations, apply them again, compare; k = 1, 2, ... up to all but the first.
      for (let k = 1; k < names.length; k++) {
        const undone = await migrate(target, log, 'down', k);
        assert.deepEqual(undone, names.slice(-k).reverse(), `down ${k}`);
        assert.deepEqual(await migrate(target, log), names.slice(-k), `up after down ${k}`);
        const after = await snapshot();
        assert.equal(after.data, before.data, `down ${k} (${undone.join(', ')}) then up kept every row, the partition map and the storage settings`);
        membersGone ||= undone.includes('1700000000700_members');
        assert.equal(after.members, membersGone ? 0 : 1, `down ${k}: ${DESTRUCTIVE['1700000000700_members']}`);
      }
      // The server runs on the result as if nothing happened: same keys, revisions continue, history readable.
      const again = await startServer({ databaseUrl: url });
      const client = new Etcd3({ hosts: again.endpoint });
      try {
        assert.equal(await client.get('/registry/pods/ns/p6').string(), 'pod 13');
        assert.equal(await client.get('/registry/pods/ns/p3').string(), null);
        assert.equal(await client.get('/app/config').string(), 'c');
        const widgets = await client.getAll().prefix('/registry/example.com/widgets/').strings();
        assert.deepEqual(Object.keys(widgets).length, 5);
        const [m] = await sql`SELECT revision::int AS r FROM meta`;
        const put = await client.put('/registry/pods/ns/new').value('n').exec();
        assert.equal(Number(put.header.revision), m!.r + 1);
        // p6 was written at revisions 8 and 15; compacted at 10, its version at 8 is still the one at 14.
        assert.equal(await client.get('/registry/pods/ns/p6').revision(14).string(), 'pod 6', 'history survived');
      } finally {
        client.close();
        await again.stop();
      }
      // The first migration's down is destructive: after down all and up, the store is empty.
      assert.equal((await migrate(target, log, 'down', Infinity)).length, names.length);
      await migrate(target, log);
      const [m] = await sql`SELECT revision::int AS r FROM meta`;
      assert.equal(m!.r, 1, `down of ${names[0]}: ${DESTRUCTIVE['1700000000000_kv-schema']}`);
      const [c] = await sql`SELECT count(*)::int AS n FROM kv_log`;
      assert.equal(c!.n, 0);
      assert.deepEqual(Object.keys(DESTRUCTIVE).sort(), [names[0], '1700000000700_members', '1700000000800_alarms'].sort(), 'the destructive downs named here: the first, members and alarms (rows of running state only)');
      assert.ok(Object.keys(DESTRUCTIVE).every((n) => names.includes(n)));
    } finally {
      await sql.end();
    }
  });
});
