import { PATHS } from '../grpc.ts';
import { KeySpace, loadKeys, value } from '../keys.ts';
import { closedLoop, limitsFor, rng } from '../loop.ts';
import type { Opts } from '../options.ts';
import { rangeRequest, scanRange } from '../pb.ts';
import type { CommonOptions, RunOutput, Workload, WorkloadContext } from '../workload.ts';
import { buildGoProgram, runGoProgram } from '../goclient.ts';
import { Recorder } from '../stats.ts';

/**
 * Range: `--keys N` keys are loaded under one prefix, then either single-key gets of random
 * keys (--op get, the default for N=1) or lists of the whole prefix (--op list, the default for
 * N>1), optionally paginated like kube-apiserver (--limit L: follow `more` from the last key,
 * every page at the first page's revision) and optionally historical (--rev R: absolute when
 * positive, head+R when negative, `loaded` = the revision right after the initial load; use
 * --updates U to rewrite every key U times after the load so that history exists).
 * `--client go` lists with etcd's Go client instead (bench/go/rangeclient: clientv3, the client
 * kube-apiserver uses; --clients goroutines on one client; linearizable, head revision only).
 */
export function rangeWorkload(o: Opts, common: CommonOptions): Workload {
  const n = o.int('keys', 1, 1);
  const op = o.oneOf('op', ['get', 'list'] as const, n === 1 ? 'get' : 'list');
  const limit = o.int('limit', 0);
  const updates = o.int('updates', 0);
  const revArg = o.str('rev', '0');
  if (revArg !== 'loaded' && !Number.isInteger(Number(revArg))) throw new Error('--rev must be an integer or "loaded"');
  const serializable = o.bool('serializable');
  const client = o.oneOf('client', ['node', 'go'] as const, 'node');
  if (client === 'go' && (op !== 'list' || revArg !== '0' || serializable)) throw new Error('--client go: linearizable lists at the head only (--op list, no --rev, no --serializable)');
  const goBin = client === 'go' ? buildGoProgram('rangeclient') : undefined;
  const ks = new KeySpace(o.str('prefix', '/bench/range/'), o.int('key-size', 32, 1), n);
  const valSize = o.int('val-size', 256);
  let rev = 0;
  let expectAll = true;
  let gets: Buffer[] = [];
  let pages = 0;
  let keysRead = 0;
  const unit = op === 'get' ? 'get' : `list of ${n} keys${limit ? ` in pages of ${limit}` : ''}`;
  return {
    name: 'range',
    params: `${client === 'go' ? 'client=go (clientv3) ' : ''}clients=${common.clients} conns=${common.conns} keys=${n} op=${op}${limit ? ` limit=${limit}` : ''}${revArg !== '0' ? ` rev=${revArg}` : ''}${updates ? ` updates=${updates}` : ''}${serializable ? ' serializable' : ''} val-size=${valSize}`,
    async setup(ctx) {
      ctx.note(`loading ${n} keys of ${valSize} bytes`);
      const loaded = await loadKeys(ctx.pool, ks, n, value(valSize));
      let head = loaded;
      for (let u = 1; u <= updates; u++) head = await loadKeys(ctx.pool, ks, n, value(valSize, u));
      rev = revArg === 'loaded' ? loaded : Number(revArg) < 0 ? head + Number(revArg) : Number(revArg);
      expectAll = rev === 0 || rev >= loaded;
      if (op === 'get') gets = Array.from({ length: n }, (_, i) => rangeRequest(ks.key(i), { revision: rev, serializable }));
    },
    async run(ctx, phase) {
      if (goBin) return goLists(goBin, ctx, phase.warmup, ks, limit, n, unit);
      pages = 0;
      keysRead = 0;
      const first = rangeRequest(ks.prefix, { rangeEnd: ks.end, limit, revision: rev, serializable });
      const out = await closedLoop(limitsFor(common, phase.warmup, common.smoke ? 20 : op === 'get' ? 10_000 : 200), (i) => {
        const conn = ctx.pool.conn(i);
        const rand = rng(i + 7);
        if (op === 'get') {
          return async () => {
            const r = scanRange(await conn.unary(PATHS.range, gets[Math.floor(rand() * n)]!));
            if (r.kvs !== 1 && expectAll) throw new Error(`get returned ${r.kvs} kvs`);
            keysRead += r.kvs;
          };
        }
        return async () => {
          let r = scanRange(await conn.unary(PATHS.range, first));
          const count = r.count;
          const atRev = rev || r.revision;
          let got = r.kvs;
          pages++;
          while (r.more) {
            if (!r.lastKey || r.kvs === 0) throw new Error('more=true on a page without kvs');
            const next = rangeRequest(Buffer.concat([r.lastKey, Buffer.from([0])]), { rangeEnd: ks.end, limit, revision: atRev, serializable });
            r = scanRange(await conn.unary(PATHS.range, next));
            got += r.kvs;
            pages++;
          }
          if (got !== count) throw new Error(`list returned ${got} kvs but count was ${count}`);
          if (expectAll && count !== n) throw new Error(`list counted ${count} keys, expected ${n}`);
          keysRead += got;
        };
      }, unit);
      if (op === 'list') out.extra['pages/s'] = Math.round(pages / out.seconds);
      out.extra['keys read/s'] = Math.round(keysRead / out.seconds);
      return out;
    },
  };
}

/** Lists from bench/go/rangeclient; its warm-up is part of the measured run's process. */
async function goLists(bin: string, ctx: WorkloadContext, warmup: boolean, ks: KeySpace, limit: number, n: number, unit: string): Promise<RunOutput> {
  const c = ctx.common;
  if (warmup) return { requests: 0, errors: 0, errorSamples: [], seconds: 0, latency: undefined, unit, extra: {} };
  if (c.seconds === undefined) throw new Error('--client go needs --seconds');
  const r = await runGoProgram<{ lists: number; keys: number; errors: number; errorSamples: string[]; seconds: number; latenciesUs: number[] }>(bin, [
    '-endpoints', ctx.endpoints.join(','), '-prefix', ks.prefix.toString('latin1'), '-end', ks.end.toString('latin1'),
    '-limit', String(limit), '-clients', String(c.clients), '-seconds', String(c.seconds), '-warmup', String(c.warmup),
  ]);
  const latency = new Recorder();
  for (const us of r.latenciesUs) latency.add(us);
  const short = r.keys !== r.lists * n ? 1 : 0;
  if (short) r.errorSamples.push(`listed ${r.keys} keys in ${r.lists} lists, expected ${n} each`);
  return { requests: r.lists, errors: r.errors + short, errorSamples: r.errorSamples, seconds: r.seconds, latency, unit, extra: { 'keys read/s': Math.round(r.keys / r.seconds) } };
}
