/**
 * Recorded Get / Put / compare-and-swap histories are linearizable, on one instance and on two
 * sharing a database, with and without batches delayed between evaluation and commit (the
 * write-fault hook), and the store's tables are consistent afterwards. The compare-and-swap is
 * Kubernetes' (a Txn comparing mod_revision, reading the key on failure), the shape the
 * one-round-trip write path serves.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startPair, startServer, type TestServer } from './helpers/server.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { checkLinearizable, History } from './helpers/linearizable.ts';
import { assertConsistent } from './helpers/consistency.ts';
import { writeFaults, type CommitFault } from '../src/store/faults.ts';
import { rng, seedFromEnv } from './helpers/seed.ts';

const B = (s: string): Buffer => Buffer.from(s);

interface Workload {
  clients: number;
  keys: number;
  ms: number;
  seed: number;
}

/**
 * `clients` loops, each on one of `raws` (round robin), doing random operations on `keys` keys
 * for `ms` milliseconds: 40 % linearizable Get, 25 % Put, 35 % Kubernetes CAS. Every value
 * written is unique, so a CAS on the mod_revision read with value v is a CAS on v.
 */
async function run(raws: Raw[], w: Workload): Promise<History> {
  const h = new History();
  const rand = rng(w.seed);
  // At least `w.ms`, and on a slow (shared) machine longer, until enough operations were
  // recorded to say something, but never more than a minute.
  const deadline = Date.now() + w.ms;
  const hardDeadline = Date.now() + 60_000;
  const going = (): boolean => Date.now() < hardDeadline && (Date.now() < deadline || h.ops.length < 1000);
  const loops = Array.from({ length: w.clients }, async (_, c) => {
    const raw = raws[c % raws.length]!;
    let n = 0;
    while (going()) {
      const key = `/lin/k${Math.floor(rand() * w.keys)}`;
      const r = rand();
      const value = `c${c}-${n++}`;
      if (r < 0.4) {
        await h.record({ key, kind: 'get' }, async () => {
          const res = await raw.call('KV', 'Range', { key: B(key) });
          return res.kvs[0] ? res.kvs[0].value.toString() : undefined;
        });
      } else if (r < 0.65) {
        await h.record({ key, kind: 'put', value }, async () => {
          await raw.call('KV', 'Put', { key: B(key), value: B(value) });
          return undefined;
        });
      } else {
        // Read, then compare-and-swap on what was read (both recorded).
        let seen: { value: string; mod: string } | undefined;
        await h.record({ key, kind: 'get' }, async () => {
          const res = await raw.call('KV', 'Range', { key: B(key) });
          const kv = res.kvs[0];
          seen = kv ? { value: kv.value.toString(), mod: String(kv.mod_revision) } : undefined;
          return seen?.value;
        });
        await h.record({ key, kind: 'cas', value, expect: seen?.value }, async () => {
          const res = await raw.call('KV', 'Txn', {
            compare: [{ key: B(key), target: 'MOD', result: 'EQUAL', mod_revision: seen?.mod ?? '0' }],
            success: [{ request_put: { key: B(key), value: B(value) } }],
            failure: [{ request_range: { key: B(key) } }],
          });
          return Boolean(res.succeeded);
        });
      }
    }
  });
  await Promise.all(loops);
  return h;
}

function assertLinearizable(h: History, label: string): void {
  const res = checkLinearizable(h.ops);
  const total = res.keys.reduce((a, k) => a + k.ops, 0);
  assert.ok(total >= 300, `${label}: only ${total} operations were recorded`);
  assert.ok(res.ok, `${label}: history of ${total} operations is not linearizable\n${res.explanation}`);
}

/** Delays about one batch in `every` by up to `maxMs`, chosen by a seeded generator. */
function delayBatches(seed: number, every: number, maxMs: number): void {
  const rand = rng(seed);
  writeFaults.beforeCommit = (_f: CommitFault) => {
    if (rand() * every >= 1) return undefined;
    return new Promise((resolve) => setTimeout(resolve, 1 + rand() * maxMs));
  };
}

const seed = seedFromEnv();
console.log(`kv.linearizable: seed ${seed} (set PGETCD_TEST_SEED to replay)`);

describe('linearizable Get/Put/CAS histories', () => {
  after(() => { delete writeFaults.beforeCommit; });

  for (const faults of [false, true]) {
    const tag = faults ? ' with delayed batches' : '';

    it(`one instance, 16 clients on 5 keys${tag}`, async () => {
      const srv: TestServer = await startServer();
      const raws = Array.from({ length: 4 }, () => rawClients(srv.endpoint));
      try {
        if (faults) delayBatches(seed + 1, 4, 15);
        const h = await run(raws, { clients: 16, keys: 5, ms: Number(process.env.PGETCD_TEST_LIN_MS ?? 5000), seed });
        delete writeFaults.beforeCommit;
        assertLinearizable(h, 'one instance');
        await assertConsistent(srv.databaseUrl);
      } finally {
        delete writeFaults.beforeCommit;
        raws.forEach((r) => r.close());
        await srv.stop();
      }
    });

    it(`two instances on one database, 16 clients on 5 keys${tag}`, async () => {
      const pair = await startPair();
      const raws = [pair.rawA, pair.rawB, rawClients(pair.a.endpoint), rawClients(pair.b.endpoint)];
      try {
        if (faults) delayBatches(seed + 2, 4, 15);
        const h = await run(raws, { clients: 16, keys: 5, ms: Number(process.env.PGETCD_TEST_LIN_MS ?? 5000), seed: seed + 3 });
        delete writeFaults.beforeCommit;
        assertLinearizable(h, 'two instances');
        await assertConsistent(pair.a.databaseUrl);
      } finally {
        delete writeFaults.beforeCommit;
        raws.slice(2).forEach((r) => r.close());
        await pair.stop();
      }
    });
  }
});
