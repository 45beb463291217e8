import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import postgres from 'postgres';
import type { Sql } from '../src/db/sql.ts';
import { targetFromUrl } from '../src/db/target.ts';
import { packedRangeQuery } from '../src/store/reader.ts';
import type { RangeRequest } from '../src/store/types.ts';
import { readRange } from '../src/watch/logread.ts';
import { sqlFor } from './helpers/db.ts';
import { rawClients } from './helpers/raw.ts';
import { startServer } from './helpers/server.ts';

const b = (s: string): Buffer => Buffer.from(s);
const end = (prefix: string): Buffer => { const e = b(prefix); e[e.length - 1]! += 1; return e; };

interface Captured { query: string; params: unknown[] }

/** A pool that records every statement it sends, so the test can EXPLAIN exactly those. */
function capturingSql(url: string, into: Captured[]): Sql {
  const t = targetFromUrl(url);
  const opts = {
    max: 1,
    onnotice: () => undefined,
    debug: (_c: number, query: string, params: unknown[]) => { into.push({ query, params }); },
    types: { int8num: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
  };
  return (t.url ? postgres(t.url, opts) : postgres({ ...opts, host: t.host, port: t.port, user: t.user, database: t.database })) as unknown as Sql;
}

function range(key: string, revision: number): RangeRequest {
  return {
    key: b(key), range_end: end(key), limit: 500, revision, sort_order: 0, sort_target: 0, serializable: false, keys_only: false,
    count_only: false, min_mod_revision: 0, max_mod_revision: 0, min_create_revision: 0, max_create_revision: 0,
  };
}

describe('a list of one resource type reads one kv_log partition', () => {
  it('head list, historical list and watch catch-up of /registry/pods/ plan only kv_log_pods (EXPLAIN)', async () => {
    const s = await startServer();
    const raw = rawClients(s.endpoint);
    const look = sqlFor(s.databaseUrl);
    const seen: Captured[] = [];
    const cap = capturingSql(s.databaseUrl, seen);
    try {
      for (let i = 0; i < 40; i++) {
        await raw.call('KV', 'Put', { key: b(`/registry/pods/ns/p${i % 10}`), value: b(`${i}`) });
        await raw.call('KV', 'Put', { key: b(`/registry/example.com/widgets/ns/w${i % 10}`), value: b(`${i}`) });
        await raw.call('KV', 'Put', { key: b(`/other/${i % 10}`), value: b(`${i}`) });
      }
      const mid = Number((await raw.call('KV', 'Range', { key: b('x') })).header.revision) - 30;
      await look`ANALYZE kv_log`;
      const cases: Array<[string, () => Promise<unknown>]> = [
        ['head list', () => packedRangeQuery(cap, range('/registry/pods/', 0))],
        ['historical list', () => packedRangeQuery(cap, range('/registry/pods/', mid))],
        ['watch catch-up', () => readRange(cap, b('/registry/pods/'), end('/registry/pods/'), mid, mid + 1000, 1000)],
      ];
      for (const [what, run] of cases) {
        seen.length = 0;
        await run();
        assert.ok(seen.length > 0, what);
        const touched = new Set<string>();
        for (const q of seen) {
          const rows = (await look.unsafe(`EXPLAIN (COSTS OFF) ${q.query}`, q.params as never[])) as unknown as Array<Record<string, string>>;
          const plan = rows.map((r) => Object.values(r)[0]).join('\n');
          for (const m of plan.matchAll(/ on (kv_log\w*)/g)) touched.add(m[1]!);
        }
        const parts = [...touched].filter((t) => t !== 'kv_log_pods');
        assert.deepEqual(parts, [], `${what} touches only kv_log_pods, not ${parts.join(', ')}`);
        if (what !== 'head list') assert.ok(touched.has('kv_log_pods'), `${what} reads kv_log_pods`);
      }
    } finally {
      raw.close();
      await cap.end();
      await look.end();
      await s.stop();
    }
  });
});
