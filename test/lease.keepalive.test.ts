import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import type postgres from 'postgres';
import { createSql, type Sql } from '../src/db/sql.ts';
import { targetFromUrl } from '../src/db/target.ts';
import { Renewer } from '../src/lease/renewer.ts';
import { sqlFor } from './helpers/db.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { startServer, type TestServer } from './helpers/server.ts';

const N = 10_000;
const FIRST_ID = 1_000_000;
/** Long enough that no lease expires while 10,000 keep-alives crawl through a busy machine. */
const TTL = 600;

/** Sends every ID on one LeaseKeepAlive stream and resolves with the answers once all arrived. */
function keepAliveAll(raw: Raw, ids: string[]): Promise<Map<string, string>> {
  const call = (raw.Lease as any).LeaseKeepAlive() as grpc.ClientDuplexStream<object, any>;
  const got = new Map<string, string>();
  return new Promise((resolve, reject) => {
    call.on('data', (d) => {
      got.set(d.ID, d.TTL);
      if (got.size === ids.length) {
        call.end();
        resolve(got);
      }
    });
    call.on('error', reject);
    for (const id of ids) call.write({ ID: id });
  });
}

describe(`keep-alives for ${N} leases`, () => {
  let srv: TestServer;
  let raw: Raw;
  let sql: postgres.Sql;
  let pool: Sql;
  const ids = Array.from({ length: N }, (_, i) => String(FIRST_ID + i));

  before(async () => {
    srv = await startServer();
    raw = rawClients(srv.endpoint);
    sql = sqlFor(srv.databaseUrl);
    pool = createSql(targetFromUrl(srv.databaseUrl), { max: 1 });
    // postgres.js learns array types when it first connects; sql.array() on the very first
    // query of a pool would be sent as plain text.
    await pool`SELECT 1`;
    // Leases straight into the table (granting them is not what is measured here).
    await sql`INSERT INTO leases (id, ttl, expires_at) SELECT g, ${TTL}, now() + ${TTL} * interval '1 second' FROM generate_series(${FIRST_ID}::int8, ${FIRST_ID + N - 1}::int8) g`;
  });
  after(async () => {
    raw.close();
    await pool.end();
    await sql.end();
    await srv.stop();
  });

  it('batches concurrent renewals into a few UPDATE statements', async () => {
    const renewer = new Renewer(pool);
    const results = await Promise.all([...ids, '42'].map((id) => renewer.renew(id)));
    assert.ok(results.slice(0, N).every((r) => r.ttl === TTL));
    assert.equal(results[N]!.ttl, 0, 'an unknown lease in the same batch gets TTL 0');
    assert.ok(renewer.stats.statements <= 4, `${renewer.stats.statements} statements for ${N + 1} renewals`);
    assert.equal(renewer.stats.renewals, N);
    // A lease asked for twice in one batch is renewed once and both callers are answered.
    const [x, y] = await Promise.all([renewer.renew(ids[0]!), renewer.renew(ids[0]!)]);
    assert.deepEqual([x.ttl, y.ttl], [TTL, TTL]);
  });

  // Throughput is measured in bench/ (`npm run bench -- lease --clients 100 --leases 10000`), not asserted here.
  it('answers every keep-alive with the full TTL, on one stream and on 100 streams, and renews each lease in the database', async () => {
    for (const streams of [1, 100]) {
      // A renewal after this instant (database clock) sets expires_at to at least it + TTL;
      // before it, every expires_at is below that (set by an earlier renewal or the insert).
      const [{ t: sentAt }] = await sql`SELECT clock_timestamp() AS t`;
      const chunks = Array.from({ length: streams }, (_, i) => ids.slice(i * (N / streams), (i + 1) * (N / streams)));
      const answers = await Promise.all(chunks.map((c) => keepAliveAll(raw, c)));
      assert.equal(answers.reduce((n, m) => n + m.size, 0), N, `${streams} stream(s): every lease answered`);
      assert.ok(answers.every((m) => [...m.values()].every((ttl) => ttl === String(TTL))), `${streams} stream(s): every answer carries the full TTL`);
      const [renewed] = await sql`SELECT count(*)::int AS n FROM leases WHERE id >= ${FIRST_ID} AND expires_at >= ${sentAt}::timestamptz + ${TTL} * interval '1 second'`;
      assert.equal(renewed?.n, N, `${streams} stream(s): every lease was renewed to its full TTL in the database`);
    }
  });
});
