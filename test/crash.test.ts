import { assertConsistent } from './helpers/consistency.ts';
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createTestDatabase, sqlFor } from './helpers/db.ts';
import { rawClients } from './helpers/raw.ts';
import { freePort, startServerProcess, type ServerProcess } from './helpers/server.ts';
import { waitFor } from './helpers/wait.ts';

describe('kill -9 in the middle of heavy writes', () => {
  const procs: ServerProcess[] = [];
  after(async () => {
    for (const p of procs) await p.kill().catch(() => undefined);
  });

  it('loses no acknowledged write and leaves gapless revisions', async () => {
    const url = await createTestDatabase();
    const port = await freePort();
    const first = await startServerProcess(url, port);
    procs.push(first);
    const raw = rawClients(first.endpoint);
    const acked = new Map<string, { value: string; revision: number }>();
    let stop = false;
    let failures = 0;
    const writers = Array.from({ length: 32 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `/crash/${w}/${i % 20}`;
        const value = `${w}-${i}`;
        try {
          const r = await raw.call('KV', 'Put', { key: Buffer.from(key), value: Buffer.from(value) });
          acked.set(key, { value, revision: Number(r.header.revision) });
        } catch {
          failures++;
          return;
        }
      }
    });
    // Kill once a good number of writes are acknowledged (by count, not time: a busy machine is slow).
    await waitFor('100 acknowledged writes', async () => (acked.size >= 100 || failures > 0 ? true : undefined), 90_000);
    assert.equal(failures, 0, 'no write failed before the kill');
    await first.kill();
    stop = true;
    await Promise.all(writers);
    raw.close();
    assert.ok(acked.size > 50, `only ${acked.size} keys acknowledged before the kill`);

    const second = await startServerProcess(url, port);
    procs.push(second);
    const raw2 = rawClients(second.endpoint);
    try {
      for (const [key, want] of acked) {
        const r = await raw2.call('KV', 'Range', { key: Buffer.from(key) });
        assert.equal(r.kvs.length, 1, `acknowledged key ${key} is missing`);
        const got = r.kvs[0];
        // A later write to the same key may have committed without its acknowledgement arriving.
        assert.ok(Number(got.mod_revision) >= want.revision, `${key} went back in time`);
        if (Number(got.mod_revision) === want.revision) assert.equal(got.value.toString(), want.value);
      }
      const sql = sqlFor(url);
      try {
        const [m] = await sql`SELECT revision FROM meta`;
        const [g] = await sql`SELECT count(DISTINCT mod_revision)::int AS n, min(mod_revision)::int AS lo, max(mod_revision)::int AS hi FROM kv_log`;
        assert.equal(Number(m!.revision), g!.hi, 'meta.revision is the highest revision in the log');
        assert.equal(g!.n, g!.hi - g!.lo + 1, 'revisions in kv_log are gapless');
      } finally {
        await sql.end();
      }
      await assertConsistent(url);
      // And the restarted server keeps writing after the last revision.
      const r = await raw2.call('KV', 'Put', { key: Buffer.from('/crash/after'), value: Buffer.from('x') });
      assert.ok(Number(r.header.revision) > Math.max(...[...acked.values()].map((a) => a.revision)));
    } finally {
      raw2.close();
      await second.stop();
    }
    // Every writer had a Put in flight (or sent one) when the server died: each got an error
    // rather than a false acknowledgement, and none was still running afterwards.
    assert.equal(failures, 32, 'every writer ended with a failed write');
  });
});
