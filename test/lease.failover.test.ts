import { assertConsistent } from './helpers/consistency.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type postgres from 'postgres';
import { ELECTION_LOCK } from '../src/lease/locks.ts';
import { createTestDatabase, sqlFor } from './helpers/db.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { freePort, startServer, startServerProcess } from './helpers/server.ts';
import { waitFor } from './helpers/wait.ts';


/** application_name of the session holding the expiry role, and how many sessions wait for it. */
async function expiryRole(sql: postgres.Sql): Promise<{ holder: string | undefined; waiting: number }> {
  const rows = await sql`
    SELECT a.application_name AS app, l.granted
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.objsubid = 1
      AND l.classid = ${ELECTION_LOCK.classid}::oid AND l.objid = ${ELECTION_LOCK.objid}::oid
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
  return { holder: rows.find((r) => r.granted)?.app as string | undefined, waiting: rows.filter((r) => !r.granted).length };
}

const countPrefix = async (raw: Raw, prefix: string): Promise<number> =>
  Number((await raw.call('KV', 'Range', { key: Buffer.from(prefix), range_end: Buffer.from(prefix.slice(0, -1) + '0'), count_only: true })).count);

describe('lease expiry role', () => {
  it('moves to another instance within seconds of a kill -9, which extends leases like etcd Promote', async (t) => {
    const databaseUrl = await createTestDatabase();
    const sql = sqlFor(databaseUrl);
    const portA = await freePort();
    const a = await startServerProcess(databaseUrl, portA);
    let b: Awaited<ReturnType<typeof startServer>> | undefined;
    let raw: Raw | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      await waitFor('A to take the expiry role', async () => ((await expiryRole(sql)).holder === `pgetcd lease expiry (p${portA})` ? true : undefined));
      b = await startServer({ databaseUrl, name: 'b' });
      // B stands by on its own session, trying for the role; A keeps it. Standing by holds no
      // snapshot (a blocking lock wait would, and hold back VACUUM in the whole database).
      await waitFor('B to stand by for the role', async () => {
        const [r] = await sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgetcd lease expiry (b)'`;
        return r!.n === 1 ? true : undefined;
      });
      await new Promise((res) => setTimeout(res, 600));
      assert.equal((await expiryRole(sql)).holder, `pgetcd lease expiry (p${portA})`);
      assert.equal((await expiryRole(sql)).waiting, 0, 'nobody waits in a blocking pg_advisory_lock');
      const [xmin] = await sql`SELECT backend_xmin IS NOT NULL AND now() - query_start > interval '200 milliseconds' AS holding
        FROM pg_stat_activity WHERE application_name = 'pgetcd lease expiry (b)'`;
      assert.equal(xmin!.holding, false, 'the standby session holds no snapshot between its tries');

      raw = rawClients(b.endpoint);
      const r = raw;
      const doomed = await r.call('Lease', 'LeaseGrant', { TTL: '2' });
      const kept = await r.call('Lease', 'LeaseGrant', { TTL: '2' });
      for (const k of ['a', 'b', 'c']) await r.call('KV', 'Put', { key: Buffer.from(`/fo/doomed/${k}`), value: Buffer.from('v'), lease: doomed.ID });
      await r.call('KV', 'Put', { key: Buffer.from('/fo/kept/x'), value: Buffer.from('v'), lease: kept.ID });
      const ka = (r.Lease as any).LeaseKeepAlive();
      ka.on('data', () => undefined);
      ka.on('error', () => undefined);
      timer = setInterval(() => ka.write({ ID: kept.ID }), 500);

      await new Promise((res) => setTimeout(res, 500));
      const killedAt = Date.now();
      await a.kill();
      // PostgreSQL ends a killed process's session at once, and B tries every 250 ms: the
      // bound here is waitFor's, not a speed promise.
      await waitFor('B to take the role', async () => ((await expiryRole(sql)).holder === 'pgetcd lease expiry (b)' ? true : undefined));
      const tookOverAt = Date.now();
      t.diagnostic(`expiry role moved ${tookOverAt - killedAt} ms after kill -9`);

      // The doomed lease had ~1.5 s left at the kill. B's Promote, after the kill, set it to
      // expire TTL + 1 s = 3 s after the promotion: it cannot be gone before killedAt + 3 s.
      await waitFor('the doomed keys to expire', async () => ((await countPrefix(r, '/fo/doomed/')) === 0 ? true : undefined), 20_000);
      const goneAfterKill = Date.now() - killedAt;
      t.diagnostic(`doomed lease expired ${goneAfterKill} ms after the kill (TTL 2 s + 1 s extension from the takeover)`);
      assert.ok(goneAfterKill >= 2990, `Promote extended the lease (gone ${goneAfterKill} ms after the kill)`);
      assert.equal(await countPrefix(r, '/fo/kept/'), 1, 'a lease kept alive through B survives the failover');
      await assertConsistent(databaseUrl);
    } finally {
      clearInterval(timer);
      raw?.close();
      await b?.stop();
      await a.kill();
      await sql.end();
    }
  });

  it('takes the role again on a new session when its database session is killed', async (t) => {
    const srv = await startServer({ name: 'term' });
    const sql = sqlFor(srv.databaseUrl);
    const raw = rawClients(srv.endpoint);
    const holderPid = async (): Promise<number | undefined> => {
      const [r] = await sql`
        SELECT l.pid FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.classid = ${ELECTION_LOCK.classid}::oid AND l.objid = ${ELECTION_LOCK.objid}::oid
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
      return r?.pid as number | undefined;
    };
    try {
      const first = await waitFor('a holder', holderPid);
      const g = await raw.call('Lease', 'LeaseGrant', { TTL: '2' });
      await raw.call('KV', 'Put', { key: Buffer.from('/term/k'), value: Buffer.from('v'), lease: g.ID });
      const killedAt = Date.now();
      await sql`SELECT pg_terminate_backend(${first})`;
      const second = await waitFor('a new holder session', async () => {
        const p = await holderPid();
        return p !== undefined && p !== first ? p : undefined;
      });
      t.diagnostic(`role re-taken on a new session ${Date.now() - killedAt} ms after pg_terminate_backend`);
      assert.notEqual(second, first);
      // Leases still expire once the role is back.
      await waitFor('the key to expire', async () => ((await countPrefix(raw, '/term/')) === 0 ? true : undefined), 10_000);
    } finally {
      raw.close();
      await srv.stop();
      await sql.end();
    }
  });

  it('after a restart, extends leases whose TTL ran out while nothing was running', async () => {
    const s1 = await startServer();
    const sql = sqlFor(s1.databaseUrl);
    let raw = rawClients(s1.endpoint);
    const g = await raw.call('Lease', 'LeaseGrant', { TTL: '2' });
    await raw.call('KV', 'Put', { key: Buffer.from('/rs/k'), value: Buffer.from('v'), lease: g.ID });
    raw.close();
    await s1.stop();
    await new Promise((r) => setTimeout(r, 2500));
    const [row] = await sql`SELECT expires_at < now() AS past FROM leases WHERE id = ${g.ID}::int8`;
    assert.equal(row?.past, true, 'the lease is past its expiry on the database clock');

    const t0 = Date.now();
    const s2 = await startServer({ databaseUrl: s1.databaseUrl });
    raw = rawClients(s2.endpoint);
    try {
      // Extended to now + TTL + 1 s = 3 s before the server started serving: whole seconds
      // left, rounded down, at most 2 and no less than 3 minus the time since t0.
      const ttl = await raw.call('Lease', 'LeaseTimeToLive', { ID: g.ID, keys: true });
      const since = Math.ceil((Date.now() - t0) / 1000);
      assert.equal(ttl.grantedTTL, '2');
      assert.ok(Number(ttl.TTL) <= 2 && Number(ttl.TTL) >= 3 - since, `remaining ${ttl.TTL}, ${since} s after the restart began`);
      assert.deepEqual(ttl.keys.map((k: Buffer) => k.toString()), ['/rs/k']);
      const ka = (raw.Lease as any).LeaseKeepAlive();
      const first = new Promise<any>((res) => ka.once('data', res));
      ka.on('error', () => undefined);
      ka.write({ ID: g.ID });
      assert.equal((await first).TTL, '2', 'a keep-alive right after the restart renews it');
      ka.end();
      // Not kept alive any more: it expires normally.
      await waitFor('the key to expire', async () => ((await countPrefix(raw, '/rs/')) === 0 ? true : undefined), 10_000);
    } finally {
      raw.close();
      await s2.stop();
      await sql.end();
    }
  });
});
