/**
 * PostgreSQL sessions killed while they are being (re)opened, as during a failover: pgetcd must
 * not leave a rejected promise unhandled (in production that is a dead process). And the array
 * types pgetcd's pools use without postgres.js's per-connection type query round-trip through a
 * real PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createSql, type Sql } from '../src/db/sql.ts';
import { targetFromUrl } from '../src/db/target.ts';
import { createTestDatabase, sqlFor } from './helpers/db.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { startServer, type TestServer } from './helpers/server.ts';

const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function put(raw: Raw, key: string, value: string): Promise<unknown> {
  const kv = raw.KV as unknown as { Put(req: object, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: unknown) => void): void };
  return new Promise((resolve, reject) => kv.Put({ key: B(key), value: B(value) }, { deadline: Date.now() + 20_000 }, (e, r) => (e ? reject(e) : resolve(r))));
}

describe('every PostgreSQL backend terminated, again and again, under write load', () => {
  let srv: TestServer;
  let raw: Raw;
  // Rejections nobody handled, and exceptions thrown from callbacks (an 'error' listener that
  // throws): either kills a production process.
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason); };
  before(async () => {
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtExceptionMonitor', onUnhandled);
    srv = await startServer();
    raw = rawClients(srv.endpoint);
  });
  after(async () => {
    raw?.close();
    await srv?.stop();
    process.removeListener('unhandledRejection', onUnhandled);
    process.removeListener('uncaughtExceptionMonitor', onUnhandled);
  });

  it('no promise rejection goes unhandled, only UNAVAILABLE is returned, and writes resume', async () => {
    let stopped = false;
    let acks = 0;
    const codes = new Map<string, number>();
    const writers = Array.from({ length: 6 }, async (_, w) => {
      for (let i = 0; !stopped; i++) {
        try {
          await put(raw, `t/${w}/${i}`, `v${i}`);
          acks++;
        } catch (err) {
          const name = grpc.status[(err as grpc.ServiceError).code] ?? String(err);
          codes.set(name, (codes.get(name) ?? 0) + 1);
          await sleep(10);
        }
      }
    });
    const admin = sqlFor(srv.databaseUrl);
    let killed = 0;
    try {
      while (acks < 50) await sleep(20);
      // Terminating in a tight loop for a while kills pool connections while they are still
      // starting up (their first statements), not only idle or busy ones.
      const until = Date.now() + 4_000;
      while (Date.now() < until) {
        const rows = await admin`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'pgetcd%'`;
        killed += rows.length;
        await sleep(5);
      }
      const resumedFrom = acks;
      const deadline = Date.now() + 60_000;
      while (acks < resumedFrom + 50) {
        assert.ok(Date.now() < deadline, `writes resume after the terminations (${acks - resumedFrom} so far)`);
        await sleep(20);
      }
    } finally {
      stopped = true;
      await Promise.all(writers);
      await admin.end();
    }
    // A rejection is reported as unhandled once the microtask queue drains; give stragglers time.
    await sleep(500);
    assert.ok(killed > 0, `backends were terminated (${killed})`);
    assert.deepEqual([...codes.keys()].filter((c) => c !== 'UNAVAILABLE'), [], `only UNAVAILABLE: ${JSON.stringify([...codes])}`);
    assert.deepEqual(unhandled.map((e) => String(e)), [], 'no unhandled rejection or uncaught exception');
  });
});

describe('array parameters and results without fetch_types', () => {
  let sql: Sql;
  before(async () => {
    sql = createSql(targetFromUrl(await createTestDatabase()), { max: 1 });
  });
  after(async () => {
    await sql?.end();
  });

  it('bytea, text, int8, int4 and bool arrays round-trip, with NULLs, quotes, backslashes, braces and commas', async () => {
    const bytes = [Buffer.from([0, 1, 0x22, 0x5c, 0x7b, 0x7d, 0x2c, 0xff]), Buffer.alloc(0), null, B('plain')];
    const texts = ['a,b', '{x}', 'say "hi"', 'back\\slash', '', 'NULL', ' spaced ', null];
    const int8s = [0, -1, 2 ** 53 - 1, null];
    const int4s = [2_147_483_647, -2_147_483_648];
    const bools = [true, false, null];
    const [r] = (await sql`SELECT ${sql.array(bytes as Buffer[], 17)}::bytea[] AS b, ${sql.array(texts as string[], 25)}::text[] AS t,
      ${sql.array(int8s as number[], 20)}::int8[] AS i8, ${sql.array(int4s, 23)}::int4[] AS i4, ${sql.array(bools as boolean[], 16)}::bool[] AS z,
      array_length(${sql.array(texts as string[], 25)}::text[], 1) AS n`) as unknown as Array<Record<string, unknown>>;
    assert.deepEqual(r!.b, bytes);
    assert.deepEqual(r!.t, texts);
    assert.deepEqual(r!.i8, int8s);
    assert.deepEqual(r!.i4, int4s);
    assert.deepEqual(r!.z, bools);
    assert.equal(r!.n, texts.length, 'the server saw one element per value');
  });

  it('reads arrays the server builds: empty, nested, explicit bounds', async () => {
    const [r] = (await sql`SELECT '{}'::text[] AS e, ARRAY[ARRAY[1,2],ARRAY[3,4]]::int8[] AS m,
      '[0:1]={7,8}'::int4[] AS lb, ARRAY['a b', NULL]::varchar[] AS v`) as unknown as Array<Record<string, unknown>>;
    assert.deepEqual(r!.e, []);
    assert.deepEqual(r!.m, [[1, 2], [3, 4]]);
    assert.deepEqual(r!.lb, [7, 8]);
    assert.deepEqual(r!.v, ['a b', null]);
  });
});
