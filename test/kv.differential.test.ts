/**
 * The randomized differential test (test/helpers/kvdiff.ts), short: one seeded sequence of
 * requests against pgetcd with its key index, pgetcd without it (the reading path for every
 * batch), and a real etcd when one is on PATH. Every answer must agree. The seed is printed;
 * rerun one with PGETCD_TEST_SEED=<seed>. The long version is test/slow/kv.differential.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import { etcdBinary, startEtcd, type KvTarget } from './helpers/kvtarget.ts';
import { runDifferential, seedFromEnv, type DiffTarget } from './helpers/kvdiff.ts';
import { rawClients } from './helpers/raw.ts';
import { startServer, type TestServer } from './helpers/server.ts';

describe('differential: pgetcd (key index, head cache), pgetcd (--no-key-index --cache-max-bytes 0: SQL for everything) and etcd give the same answers', () => {
  const servers: TestServer[] = [];
  const targets: DiffTarget[] = [];
  let etcd: KvTarget | undefined;
  before(async () => {
    const a = await startServer({ cacheMaxBytes: 64 * 1024 * 1024 });
    const b = await startServer({ keyIndex: false, cacheMaxBytes: 0 });
    servers.push(a, b);
    targets.push({ name: 'pgetcd', raw: rawClients(a.endpoint) }, { name: 'pgetcd --no-key-index --cache-max-bytes 0', raw: rawClients(b.endpoint) });
    if (etcdBinary()) {
      etcd = await startEtcd();
      targets.push({ name: 'etcd', raw: etcd.raw });
    }
  });
  after(async () => {
    for (const t of targets.slice(0, 2)) t.raw.close();
    await etcd?.stop();
    for (const s of servers) await s.stop();
  });

  it('one seeded sequence of 400 requests', async (t) => {
    const seed = seedFromEnv();
    t.diagnostic(`seed ${seed} (PGETCD_TEST_SEED=${seed} to rerun); targets: ${targets.map((x) => x.name).join(', ')}`);
    console.log(`kv.differential: seed ${seed}`);
    await runDifferential(targets, seed, 400);
  });
});
