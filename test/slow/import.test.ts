import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { runPgetcd } from '../helpers/cli.ts';
import { createTestDatabase, sqlFor } from '../helpers/db.ts';
import { etcdBinary, startEtcd } from '../helpers/kvtarget.ts';
import { startServer } from '../helpers/server.ts';
import { importFromEtcd } from '../../src/ops/import.ts';
import { checkConsistency } from '../../src/store/check.ts';
import type { Sql } from '../../src/db/sql.ts';

/** kine's PostgreSQL schema as kine creates it (../shared/KINE.md). */
const KINE_SCHEMA = [
  `CREATE TABLE kine (
     id SERIAL PRIMARY KEY, name VARCHAR(630), created INTEGER, deleted INTEGER, create_revision INTEGER,
     prev_revision INTEGER, lease INTEGER, value bytea, old_value bytea)`,
  'CREATE INDEX kine_name_index ON kine (name)',
  'CREATE INDEX kine_name_id_index ON kine (name, id)',
  'CREATE INDEX kine_id_deleted_index ON kine (id, deleted)',
  'CREATE INDEX kine_prev_revision_index ON kine (prev_revision)',
  'CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON kine (name, prev_revision)',
];

interface KineRow { name: string; created: number; deleted: number; lease: number; value: string }

describe('import', () => {
  it('--from-kine copies the latest live version of every key, in kine\'s order, with TTL leases; refuses a non-empty target', async () => {
    const kineUrl = await createTestDatabase();
    const target = await createTestDatabase();
    const kine = sqlFor(kineUrl);
    const look = sqlFor(target);
    try {
      for (const s of KINE_SCHEMA) await kine.unsafe(s);
      // kine's log: creates, updates, a delete, a delete then re-create, fill rows, its compaction key.
      const log: KineRow[] = [
        { name: 'compact_rev_key', created: 1, deleted: 0, lease: 0, value: '' },
        { name: '/registry/pods/default/a', created: 1, deleted: 0, lease: 0, value: 'a1' },
        { name: '/registry/events/default/e1', created: 1, deleted: 0, lease: 3600, value: 'ev1' },
        { name: 'gap-12', created: 0, deleted: 1, lease: 0, value: '' },
        { name: '/registry/pods/default/b', created: 1, deleted: 0, lease: 0, value: 'b1' },
        { name: '/registry/pods/default/a', created: 0, deleted: 0, lease: 0, value: 'a2' },
        { name: '/registry/configmaps/kube-system/c', created: 1, deleted: 0, lease: 0, value: 'c1' },
        { name: '/registry/pods/default/b', created: 0, deleted: 1, lease: 0, value: 'b1' },
        { name: '/registry/events/default/e2', created: 1, deleted: 0, lease: 600, value: 'ev2' },
        { name: '/registry/leases/kube-system/l', created: 1, deleted: 0, lease: 3600, value: 'l1' },
        { name: '/registry/configmaps/kube-system/c', created: 0, deleted: 1, lease: 0, value: 'c1' },
        { name: '/registry/configmaps/kube-system/c', created: 1, deleted: 0, lease: 0, value: 'c2' },
        { name: 'compact_rev_key_apiserver', created: 1, deleted: 0, lease: 0, value: '7' },
        { name: '/registry/pods/default/a', created: 0, deleted: 0, lease: 0, value: 'a3' },
      ];
      const ids = new Map<string, number>();
      for (const r of log) {
        const prev = ids.get(r.name) ?? 0;
        const [row] = await kine`INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value)
          VALUES (${r.name}, ${r.created}, ${r.deleted}, 0, ${prev}, ${r.lease}, ${Buffer.from(r.value)}, NULL) RETURNING id`;
        ids.set(r.name, row!.id as number);
      }
      // kine's ids have holes (rolled-back inserts): the import must not care.
      await kine`SELECT setval('kine_id_seq', 100)`;
      await kine`INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value) VALUES ('/registry/secrets/ns/s', 1, 0, 0, 0, 0, ${Buffer.from('s1')})`;

      const up = await runPgetcd(['migrate', 'up', '--endpoint', target]);
      assert.equal(up.code, 0, up.stderr);
      const r = await runPgetcd(['import', '--from-kine', kineUrl, '--endpoint', target, '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      const report = JSON.parse(r.stdout);
      assert.equal(report.keys, 6);
      assert.equal(report.leases, 2);
      assert.equal(report.targetHash, report.sourceHash);
      assert.ok(report.keysPerSecond > 0);

      const rows = await look`SELECT convert_from(c.key, 'UTF8') AS key, convert_from(c.value, 'UTF8') AS value, c.mod_revision::int AS rev, c.version::int AS version, l.ttl::int AS ttl
        FROM kv_current c LEFT JOIN leases l ON l.id = c.lease ORDER BY c.mod_revision`;
      // The order of kine's last rows: e1(3) e2(9) l(10) c(12) a(14) s(101).
      assert.deepEqual(rows.map((x) => [x.key, x.value, x.version, x.ttl]), [
        ['/registry/events/default/e1', 'ev1', 1, 3600],
        ['/registry/events/default/e2', 'ev2', 1, 600],
        ['/registry/leases/kube-system/l', 'l1', 1, 3600],
        ['/registry/configmaps/kube-system/c', 'c2', 1, null],
        ['/registry/pods/default/a', 'a3', 1, null],
        ['/registry/secrets/ns/s', 's1', 1, null],
      ]);
      assert.deepEqual(rows.map((x) => x.rev), [2, 3, 4, 5, 6, 7], 'gapless revisions after the lease grants');

      const again = await runPgetcd(['import', '--from-kine', kineUrl, '--endpoint', target]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /^pgetcd import: the target database is not empty \(revision 7, 6 keys, 2 leases\)/);

      const check = await runPgetcd(['check', '--endpoint', target]);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.equal(check.stdout, 'consistent\n');

      const exp = await runPgetcd(['export', '--endpoint', target]);
      assert.equal(exp.code, 0, exp.stderr);
      const lines = exp.stdout.trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(lines[0], { revision: 7, compact_revision: 0, keys: 6, leases: 2 });
      assert.equal(lines.filter((l) => 'lease' in l && 'ttl' in l).length, 2);
      const exported = lines.filter((l) => 'key' in l).map((l) => Buffer.from(l.key, 'base64').toString());
      assert.deepEqual(exported, [...exported].sort());
      assert.equal(exported.length, 6);

      // check names what is wrong after a bad manual change.
      await look`DELETE FROM kv_current WHERE key = ${Buffer.from('/registry/pods/default/a')}`;
      const bad = await runPgetcd(['check', '--endpoint', target, '-o', 'json']);
      assert.equal(bad.code, 1);
      assert.equal(JSON.parse(bad.stdout).consistent, false);
    } finally {
      await kine.end();
      await look.end();
    }
  });

  it('--from-etcd copies a live etcd 3.4\'s keys (paginated, one revision) and leases with their remaining TTL', { skip: etcdBinary() ? false : 'no etcd binary on PATH' }, async () => {
    const etcd = await startEtcd();
    const target = await createTestDatabase();
    const look = sqlFor(target);
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      const expected = new Map<string, string>();
      for (let i = 0; i < 2300; i += 100) {
        await Promise.all(Array.from({ length: 100 }, (_, j) => {
          const k = `/registry/configmaps/ns/cm${String(i + j).padStart(5, '0')}`;
          expected.set(k, `v${i + j}`);
          return client.put(k).value(`v${i + j}`);
        }));
      }
      await client.delete().key('/registry/configmaps/ns/cm00007');
      expected.delete('/registry/configmaps/ns/cm00007');
      await client.put('/registry/configmaps/ns/cm00003').value('again');
      expected.set('/registry/configmaps/ns/cm00003', 'again');
      const lease = client.lease(300, { autoKeepAlive: false });
      const leaseId = await lease.grant();
      await lease.put('/registry/leases/kube-node-lease/n1').value('hb');
      expected.set('/registry/leases/kube-node-lease/n1', 'hb');

      // The functions behind `pgetcd import --from-etcd` (the binary is exercised with kine above).
      const s = await startServer({ databaseUrl: target });
      let report;
      try {
        report = await importFromEtcd(etcd.endpoint, s.app.sql, s.app.store, { page: 1000 });
      } finally {
        await s.stop();
      }
      assert.equal(report.keys, expected.size);
      assert.equal(report.targetHash, report.sourceHash);
      assert.equal(report.leases, 1);

      const rows = await look`SELECT convert_from(key, 'UTF8') AS key, convert_from(value, 'UTF8') AS value, lease::text AS lease, mod_revision::int AS rev FROM kv_current`;
      assert.deepEqual(new Map(rows.map((x) => [x.key as string, x.value as string])), expected);
      const byKey = new Map(rows.map((x) => [x.key as string, x]));
      assert.equal(byKey.get('/registry/leases/kube-node-lease/n1')!.lease, BigInt.asIntN(64, BigInt(leaseId)).toString());
      // etcd's order of last writes is kept: cm00003 was rewritten after every other configmap.
      assert.ok(byKey.get('/registry/configmaps/ns/cm00003')!.rev > byKey.get('/registry/configmaps/ns/cm02299')!.rev);
      const [l] = await look`SELECT ttl::int AS ttl FROM leases`;
      assert.ok(l!.ttl > 0 && l!.ttl <= 300, `remaining TTL ${l!.ttl}`);
      assert.deepEqual(await checkConsistency(look as unknown as Sql), []);
    } finally {
      client.close();
      await look.end();
      await etcd.stop();
    }
  });
});
