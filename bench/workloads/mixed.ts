import { performance } from 'node:perf_hooks';
import { PATHS } from '../grpc.ts';
import { KeySpace, PutTemplate, loadKeys, value } from '../keys.ts';
import { closedLoop, limitsFor, rng } from '../loop.ts';
import type { Opts } from '../options.ts';
import { rangeRequest, scanRange } from '../pb.ts';
import { Recorder } from '../stats.ts';
import type { CommonOptions, Workload } from '../workload.ts';

/** Mixed: single-key gets (share --read-ratio) and puts, on random keys of a loaded key space. */
export function mixedWorkload(o: Opts, common: CommonOptions): Workload {
  const ratio = o.num('read-ratio', 0.9);
  if (ratio < 0 || ratio > 1) throw new Error('--read-ratio must be between 0 and 1');
  const space = o.int('key-space', common.smoke ? 100 : 10_000, 1);
  const ks = new KeySpace(o.str('prefix', '/bench/mixed/'), o.int('key-size', 32, 1), space);
  const val = value(o.int('val-size', 256));
  const gets = Array.from({ length: space }, (_, i) => rangeRequest(ks.key(i)));
  return {
    name: 'mixed',
    params: `clients=${common.clients} conns=${common.conns} read-ratio=${ratio} key-space=${space} val-size=${val.length}`,
    async setup(ctx) {
      ctx.note(`loading ${space} keys`);
      await loadKeys(ctx.pool, ks, space, val);
    },
    async run(ctx, phase) {
      const reads = new Recorder();
      const writes = new Recorder();
      const out = await closedLoop(limitsFor(common, phase.warmup, common.smoke ? 200 : 10_000), (i) => {
        const conn = ctx.pool.conn(i);
        const rand = rng(i + 21);
        const tpl = new PutTemplate(ks, val);
        return async () => {
          const k = Math.floor(rand() * space);
          const t0 = performance.now();
          if (rand() < ratio) {
            const r = scanRange(await conn.unary(PATHS.range, gets[k]!));
            if (r.kvs !== 1) throw new Error(`get returned ${r.kvs} kvs`);
            reads.add((performance.now() - t0) * 1000);
          } else {
            await conn.unary(PATHS.put, tpl.forKey(k));
            writes.add((performance.now() - t0) * 1000);
          }
        };
      }, 'get or put');
      const r = reads.summary();
      const w = writes.summary();
      out.extra['reads'] = r?.count ?? 0;
      out.extra['writes'] = w?.count ?? 0;
      if (r) out.extra['read p99 ms'] = +(r.p99Us / 1000).toFixed(3);
      if (w) out.extra['write p99 ms'] = +(w.p99Us / 1000).toFixed(3);
      return out;
    },
  };
}
