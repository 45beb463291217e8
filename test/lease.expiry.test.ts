import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type postgres from 'postgres';
import { sqlFor } from './helpers/db.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { startServer, type TestServer } from './helpers/server.ts';

const LEASES = 100;
const KEYS_PER_LEASE = 10;
/**
 * Granted TTL: long enough for the 1,100 requests that set the leases up to finish on a busy
 * machine. Once they have, the leases are set to expire EXPIRE_IN_S later, spread over 100 ms.
 */
const TTL = 120;
const EXPIRE_IN_S = 3;

/**
 * Kubernetes-style load: 1,000 event keys spread over 100 short leases (several keys per
 * lease). No key goes before its lease's expiry, every one goes (the bound is the polling
 * deadline: on a busy machine expiry is late, not wrong; the lag is printed, and measured in
 * bench/), each lease's keys deleted in one revision in key order.
 */
describe('lease expiry under load', () => {
  let srv: TestServer;
  let raw: Raw;
  let sql: postgres.Sql;
  before(async () => {
    srv = await startServer();
    raw = rawClients(srv.endpoint);
    sql = sqlFor(srv.databaseUrl);
  });
  after(async () => {
    raw.close();
    await sql.end();
    await srv.stop();
  });

  it(`expires ${LEASES * KEYS_PER_LEASE} keys on ${LEASES} leases, none early, each lease in one revision`, async (t) => {
    const grants = await Promise.all(Array.from({ length: LEASES }, () => raw.call('Lease', 'LeaseGrant', { TTL: String(TTL) })));
    const ids: string[] = grants.map((g) => g.ID);
    const puts: Array<Promise<unknown>> = [];
    ids.forEach((id, l) => {
      for (let k = 0; k < KEYS_PER_LEASE; k++) {
        // Keys of one lease interleave with others' in key order, as events of many objects do.
        const key = `/registry/events/ns/obj-${String(k).padStart(3, '0')}-${String(l).padStart(3, '0')}`;
        puts.push(raw.call('KV', 'Put', { key: Buffer.from(key), value: Buffer.from('event'), lease: id }));
      }
    });
    await Promise.all(puts);
    // Straight in the table: the expiry path does not care how expires_at got there.
    await sql`UPDATE leases SET expires_at = clock_timestamp() + ${EXPIRE_IN_S} * interval '1 second' + (id % 100) * interval '1 millisecond' WHERE id = ANY(${ids}::int8[])`;
    const startRev = Number((await raw.call('KV', 'Range', { key: Buffer.from('x') })).header.revision);

    // Each lease's expiry on the database clock (the host's clock too: same machine).
    const expiries = new Map<string, number>();
    for (const r of await sql`SELECT id::text AS id, (extract(epoch FROM expires_at) * 1000)::float8 AS at FROM leases WHERE id = ANY(${ids}::int8[])`) {
      expiries.set(r.id, r.at);
    }
    assert.equal(expiries.size, LEASES, 'no lease expired before every key was written');

    // Watch each lease's keys disappear (a cheap aggregate every 20 ms).
    const goneAt = new Map<string, number>();
    const deadline = Date.now() + EXPIRE_IN_S * 1000 + 30_000;
    while (goneAt.size < LEASES && Date.now() < deadline) {
      const live = new Set((await sql`SELECT DISTINCT lease::text AS lease FROM kv_current WHERE lease <> 0 AND lease = ANY(${ids}::int8[])`).map((r) => r.lease as string));
      const now = Date.now();
      for (const id of ids) if (!live.has(id) && !goneAt.has(id)) goneAt.set(id, now);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(goneAt.size, LEASES, 'every lease expired');

    const lags = ids.map((id) => goneAt.get(id)! - expiries.get(id)!).sort((a, b) => a - b);
    const p = (q: number): number => Math.round(lags[Math.min(lags.length - 1, Math.floor(q * lags.length))]!);
    t.diagnostic(`expiry lag after expires_at (ms, 20 ms polling): min ${Math.round(lags[0]!)} p50 ${p(0.5)} p99 ${p(0.99)} max ${Math.round(lags[lags.length - 1]!)}`);
    assert.ok(lags[0]! >= -25, `no key deleted before its lease expired (min lag ${lags[0]} ms)`);

    // Through the KV API: nothing left, and the leases are gone.
    const left = await raw.call('KV', 'Range', { key: Buffer.from('/registry/events/'), range_end: Buffer.from('/registry/events0'), count_only: true });
    assert.equal(left.count, '0');
    const ttl = await raw.call('Lease', 'LeaseTimeToLive', { ID: ids[0] });
    assert.equal(ttl.TTL, '-1');

    // In the log: one revision per lease, holding exactly that lease's keys, in key order.
    const tomb = await sql`
      SELECT mod_revision, array_agg(convert_from(key, 'UTF8') ORDER BY sub) AS keys
      FROM kv_log WHERE deleted AND mod_revision > ${startRev} GROUP BY mod_revision ORDER BY mod_revision`;
    assert.equal(tomb.length, LEASES);
    const endRev = Number((await raw.call('KV', 'Range', { key: Buffer.from('x') })).header.revision);
    assert.equal(endRev, startRev + LEASES, 'exactly one revision per expired lease');
    for (const r of tomb) {
      const keys = r.keys as string[];
      assert.equal(keys.length, KEYS_PER_LEASE);
      assert.deepEqual(keys, [...keys].sort());
      const lease = keys[0]!.slice(-3);
      assert.ok(keys.every((k) => k.endsWith(lease)), 'one lease per revision');
    }
  });
});
