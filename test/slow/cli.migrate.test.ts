import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { migrate, migrationNames } from '../../src/db/migrate.ts';
import { targetFromUrl } from '../../src/db/target.ts';
import { createLogger } from '../../src/log.ts';
import { runPgetcd } from '../helpers/cli.ts';
import { createTestDatabase, sqlFor } from '../helpers/db.ts';
import { freePort, startServer } from '../helpers/server.ts';

const log = createLogger('silent');

/** The same database URL with another user name (the test server trusts local users). */
function asUser(url: string, user: string): string {
  const u = new URL(url);
  u.username = user;
  return u.toString();
}

describe('pgetcd command line', () => {
  it('an unknown command or flag is one line on stderr and exit 2', async () => {
    const r = await runPgetcd(['frobnicate']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const f = await runPgetcd(['migrate', 'status', '--no-such-flag']);
    assert.equal(f.code, 2);
    assert.match(f.stderr, /^pgetcd migrate: Unknown option '--no-such-flag'/);
    assert.equal(f.stderr.trim().split('\n').length, 1);
  });

  it('every command has --help', async () => {
    for (const c of ['migrate', 'compact']) {
      const r = await runPgetcd([c, '--help']);
      assert.equal(r.code, 0, c);
      assert.match(r.stdout, new RegExp(`^Usage: pgetcd ${c}`));
    }
    const top = await runPgetcd(['--help']);
    assert.match(top.stdout, /Commands:\n {2}serve/);
  });

  it('migrate up, status as json, down one, status shows it pending', async () => {
    const url = await createTestDatabase();
    const up = await runPgetcd(['migrate', 'up', '--endpoint', url, '-o', 'json']);
    assert.equal(up.code, 0, up.stderr);
    const names = await migrationNames();
    assert.deepEqual(JSON.parse(up.stdout).migrations, names);
    const down = await runPgetcd(['migrate', 'down', '--endpoint', url]);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(down.stdout, `rolled back ${names[names.length - 1]}\n`);
    const st = await runPgetcd(['migrate', 'status', '--endpoint', url, '-o', 'json']);
    const rows = JSON.parse(st.stdout) as Array<{ name: string; state: string }>;
    assert.deepEqual(rows.map((r) => r.state), names.map((_, i) => (i === names.length - 1 ? 'pending' : 'applied')));
    const table = await runPgetcd(['migrate', 'status', '--endpoint', url]);
    assert.match(table.stdout, /^NAME +STATE +RUN_ON\n/);
  });

  it('the server refuses a schema newer than the code, a foreign database, and pending migrations with --no-migrate', async () => {
    const url = await createTestDatabase();
    await migrate(targetFromUrl(url), log);
    const sql = sqlFor(url);
    try {
      await sql`INSERT INTO pgmigrations (name, run_on) VALUES ('9999999999999_from-the-future', now())`;
      await assert.rejects(startServer({ databaseUrl: url }), /schema is newer than this pgetcd \(unknown migration 9999999999999_from-the-future\)/);
      const st = await runPgetcd(['migrate', 'status', '--endpoint', url]);
      assert.equal(st.code, 1);
      assert.match(st.stdout, /9999999999999_from-the-future +unknown/);
      // Through the binary: one line on stderr, non-zero exit.
      const serve = await runPgetcd(['--endpoint', url, '--listen-client-urls', `http://127.0.0.1:${await freePort()}`, '--listen-metrics-urls', '', '--log-level', 'silent']);
      assert.equal(serve.code, 1);
      assert.match(serve.stderr, /^pgetcd: the database schema is newer than this pgetcd/);
    } finally {
      await sql.end();
    }

    const foreign = await createTestDatabase();
    const f = sqlFor(foreign);
    try {
      await f`CREATE TABLE orders (id int)`;
      await assert.rejects(startServer({ databaseUrl: foreign }), /the database is not pgetcd's/);
    } finally {
      await f.end();
    }

    const empty = await createTestDatabase();
    await assert.rejects(startServer({ databaseUrl: empty, migrate: false }), /run `pgetcd migrate up` first/);
  });

  it('the server runs with --no-migrate as a role that has only DML rights', async () => {
    const url = await createTestDatabase();
    const up = await runPgetcd(['migrate', 'up', '--endpoint', url]);
    assert.equal(up.code, 0, up.stderr);
    const role = `pgetcd_rt_${randomBytes(4).toString('hex')}`;
    const dbName = new URL(url).pathname.slice(1);
    const sql = sqlFor(url);
    try {
      // The GRANTs docs/operations.md lists for the runtime role.
      await sql.unsafe(`CREATE ROLE ${role} LOGIN`);
      await sql.unsafe(`GRANT CONNECT ON DATABASE ${dbName} TO ${role}`);
      await sql.unsafe(`GRANT USAGE ON SCHEMA public TO ${role}`);
      await sql.unsafe(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}`);
      const [r] = await sql`SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = ${role}`;
      assert.deepEqual({ ...r }, { rolsuper: false, rolcreatedb: false });
    } finally {
      await sql.end();
    }
    const s = await startServer({ databaseUrl: asUser(url, role), migrate: false });
    const client = new Etcd3({ hosts: s.endpoint });
    try {
      await client.put('/registry/pods/default/a').value('1');
      await client.put('plain').value('2');
      const lease = client.lease(30);
      await lease.put('leased').value('3');
      const events: string[] = [];
      const w = await client.watch().prefix('/registry/').create();
      w.on('put', (kv) => events.push(kv.key.toString()));
      await client.put('/registry/pods/default/b').value('4');
      assert.equal(await client.get('/registry/pods/default/a').string(), '1');
      assert.equal(await client.get('leased').string(), '3');
      await client.delete().key('plain');
      const rev = Number((await client.get('leased').exec()).header.revision);
      await client.kv.compact({ revision: String(rev), physical: true });
      for (let i = 0; i < 100 && events.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(events, ['/registry/pods/default/b']);
      await lease.revoke();
      assert.equal(await client.get('leased').string(), null);
      await w.cancel();
    } finally {
      client.close();
      await s.stop();
    }
  });
});
