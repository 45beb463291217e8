import { assertConsistent } from '../helpers/consistency.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createTestDatabase, sqlFor } from '../helpers/db.ts';
import { expectGrpcError, rawClients, type Raw } from '../helpers/raw.ts';
import { freePort, startServerProcess } from '../helpers/server.ts';
import { waitFor } from '../helpers/wait.ts';

const b = (s: string): Buffer => Buffer.from(s);

async function state(raw: Raw, revision: number): Promise<string> {
  const r = await raw.call('KV', 'Range', { key: b('\0'), range_end: b('\0'), revision });
  return JSON.stringify(r.kvs.map((kv: { key: Buffer; value: Buffer; mod_revision: string; version: string; create_revision: string }) =>
    [kv.key.toString(), kv.value.toString(), kv.mod_revision, kv.version, kv.create_revision]));
}

describe('physical compaction survives kill -9', () => {
  it('a process killed in the middle of removing history loses nothing above the compact revision, and the removal resumes on start', async () => {
    const url = await createTestDatabase();
    const port = await freePort();
    // Slow removal in small transactions, so the kill lands in the middle of it.
    const p1 = await startServerProcess(url, port, ['--compaction-batch-revisions', '50', '--compaction-rows-per-second', '400']);
    let raw = rawClients(p1.endpoint);
    const sql = sqlFor(url);
    try {
      // 100 keys overwritten 30 times, some deleted and recreated.
      for (let round = 0; round < 30; round++) {
        await Promise.all(Array.from({ length: 100 }, (_, k) => (round % 10 === 9 && k % 10 === 0
          ? raw.call('KV', 'DeleteRange', { key: b(`/registry/pods/ns/p${k}`) })
          : raw.call('KV', 'Put', { key: b(`/registry/pods/ns/p${k}`), value: b(`${round}`) }))));
      }
      const head = Number((await raw.call('KV', 'Range', { key: b('x') })).header.revision);
      const compactAt = head - 500;
      const expected = new Map<number, string>();
      for (const r of [compactAt, compactAt + 1, compactAt + 250, head]) expected.set(r, await state(raw, r));
      await raw.call('KV', 'Compact', { revision: compactAt });
      const midway = await waitFor('removal under way', async () => {
        const [c] = await sql`SELECT physical_revision::int AS p FROM compaction`;
        return c!.p > 0 ? c!.p : undefined;
      });
      await p1.kill();
      const [after] = await sql`SELECT physical_revision::int AS p FROM compaction`;
      assert.ok(after!.p >= midway && after!.p < compactAt, `killed midway (removed up to ${after!.p} of ${compactAt})`);
      raw.close();

      const p2 = await startServerProcess(url, port);
      raw = rawClients(p2.endpoint);
      try {
        await waitFor('removal resumed and finished', async () => {
          const [c] = await sql`SELECT physical_revision::int AS p FROM compaction`;
          return c!.p === compactAt ? true : undefined;
        }, 60_000);
        for (const [r, s] of expected) assert.equal(await state(raw, r), s, `the key space at revision ${r}`);
        await expectGrpcError(raw.call('KV', 'Range', { key: b('/registry/pods/ns/p1'), revision: compactAt - 1 }), 11, 'etcdserver: mvcc: required revision has been compacted');
        // What remains at or below the compact revision: each key's latest live row, nothing else.
        const [extra] = await sql`
          SELECT count(*)::int AS n FROM kv_log l
          WHERE l.mod_revision <= ${compactAt}
            AND (l.deleted OR EXISTS (SELECT 1 FROM kv_log n WHERE n.key = l.key AND n.mod_revision > l.mod_revision AND n.mod_revision <= ${compactAt}))`;
        assert.equal(extra!.n, 0, 'no superseded row or tombstone at or below the compact revision');
        await assertConsistent(url);
      } finally {
        raw.close();
        await p2.stop();
      }
    } finally {
      raw.close();
      await sql.end();
      await p1.kill().catch(() => undefined);
    }
  });
});
