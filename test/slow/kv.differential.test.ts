/**
 * The long differential run (test/helpers/kvdiff.ts): several seeded sequences of 3,000 requests
 * against pgetcd with and without its key index and a real etcd when one is on PATH. Seeds are
 * printed; rerun one with PGETCD_TEST_SEED=<seed> (then only that seed runs).
 */
import { after, before, describe, it } from 'node:test';
import { etcdBinary, startEtcd, type KvTarget } from '../helpers/kvtarget.ts';
import { rng, runDifferential, seedFromEnv, type DiffTarget } from '../helpers/kvdiff.ts';
import { rawClients, type Raw } from '../helpers/raw.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const base = seedFromEnv();
const next = rng(base);
const seeds = process.env.PGETCD_TEST_SEED ? [base] : [base, ...Array.from({ length: 4 }, () => Math.floor(next() * 2 ** 31))];

describe('differential (long): pgetcd and etcd give the same answers', () => {
  for (const seed of seeds) {
    describe(`seed ${seed}`, () => {
      const servers: TestServer[] = [];
      const raws: Raw[] = [];
      const targets: DiffTarget[] = [];
      let etcd: KvTarget | undefined;
      before(async () => {
        const a = await startServer({ cacheMaxBytes: 64 * 1024 * 1024 });
        const b = await startServer({ keyIndex: false, cacheMaxBytes: 0 });
        servers.push(a, b);
        raws.push(rawClients(a.endpoint), rawClients(b.endpoint));
        targets.push({ name: 'pgetcd', raw: raws[0]! }, { name: 'pgetcd --no-key-index', raw: raws[1]! });
        if (etcdBinary()) {
          etcd = await startEtcd();
          targets.push({ name: 'etcd', raw: etcd.raw });
        }
      });
      after(async () => {
        for (const r of raws) r.close();
        await etcd?.stop();
        for (const s of servers) await s.stop();
      });
      it('3,000 requests', async (t) => {
        t.diagnostic(`seed ${seed} (PGETCD_TEST_SEED=${seed} to rerun); targets: ${targets.map((x) => x.name).join(', ')}`);
        await runDifferential(targets, seed, 3000);
      });
    });
  }
});
