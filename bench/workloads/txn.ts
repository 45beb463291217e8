import { PATHS } from '../grpc.ts';
import { KeySpace, loadKeys, value } from '../keys.ts';
import { closedLoop, limitsFor, rng } from '../loop.ts';
import type { Opts } from '../options.ts';
import { bytesField, casTxn, opPut, opRange, scanTxn } from '../pb.ts';
import type { CommonOptions, Workload } from '../workload.ts';

/**
 * Kubernetes-style optimistic update (kube-apiserver's GuaranteedUpdate): Txn
 * if mod_revision(key) == last seen then put(key) else get(key), on random keys of
 * --key-space. A failed compare refreshes the last seen revision from the returned get, as the
 * apiserver does before retrying. The last seen revisions are shared by all clients, like one
 * apiserver's watch cache.
 */
export function txnWorkload(o: Opts, common: CommonOptions): Workload {
  const space = o.int('key-space', common.smoke ? 20 : 1000, 1);
  const ks = new KeySpace(o.str('prefix', '/bench/txn/'), o.int('key-size', 32, 1), space);
  const val = value(o.int('val-size', 256));
  const known = new Float64Array(space);
  const cmpKey: Buffer[] = [];
  const success: Buffer[] = [];
  const failure: Buffer[] = [];
  for (let i = 0; i < space; i++) {
    const k = ks.key(i);
    cmpKey.push(bytesField(3, k));
    success.push(bytesField(2, opPut(k, val), true));
    failure.push(bytesField(3, opRange(k), true));
  }
  return {
    name: 'txn',
    params: `clients=${common.clients} conns=${common.conns} key-space=${space} val-size=${val.length} (compare mod_revision -> put, else get)`,
    async setup(ctx) {
      ctx.note(`creating ${space} keys`);
      await loadKeys(ctx.pool, ks, space, val, (first, n, rev) => known.fill(rev, first, first + n));
    },
    async run(ctx, phase) {
      let conflicts = 0;
      const out = await closedLoop(limitsFor(common, phase.warmup, common.smoke ? 200 : 10_000), (i) => {
        const conn = ctx.pool.conn(i);
        const rand = rng(i + 13);
        return async () => {
          const k = Math.floor(rand() * space);
          const r = scanTxn(await conn.unary(PATHS.txn, casTxn(cmpKey[k]!, known[k]!, success[k]!, failure[k]!)));
          if (r.succeeded) {
            if (r.revision > known[k]!) known[k] = r.revision;
            return;
          }
          conflicts++;
          if (!r.range || r.range.kvs !== 1) throw new Error('compare failed and the get returned no kv');
          known[k] = r.range.firstModRevision;
        };
      }, 'CAS txn');
      out.extra['compare failures'] = conflicts;
      out.extra['compare failures %'] = out.requests ? +(100 * conflicts / out.requests).toFixed(2) : 0;
      return out;
    },
  };
}
