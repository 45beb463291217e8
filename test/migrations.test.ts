import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { migrate } from '../src/db/migrate.ts';
import { targetFromUrl } from '../src/db/target.ts';
import { createLogger } from '../src/log.ts';
import { createTestDatabase, sqlFor } from './helpers/db.ts';

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
});
