import { PATHS } from '../grpc.ts';
import { KeySpace, PutTemplate, value } from '../keys.ts';
import { closedLoop, limitsFor, rng } from '../loop.ts';
import type { Opts } from '../options.ts';
import type { CommonOptions, Workload } from '../workload.ts';

/**
 * Put: each client puts `--val-size` bytes under sequential keys (each put a new key, or
 * cycling over --key-space when given) or random keys in --key-space.
 */
export function putWorkload(o: Opts, common: CommonOptions): Workload {
  const order = o.oneOf('keys', ['sequential', 'random'] as const, 'sequential');
  const space = o.int('key-space', order === 'random' ? 100_000 : 0);
  const ks = new KeySpace(o.str('prefix', '/bench/put/'), o.int('key-size', 32, 1), space || 100_000_000);
  const val = value(o.int('val-size', 256));
  let seq = 0;
  return {
    name: 'put',
    params: `clients=${common.clients} conns=${common.conns} keys=${order}${space ? ` key-space=${space}` : ''} key-size=${ks.prefix.length + ks.width} val-size=${val.length}`,
    run: (ctx, phase) => closedLoop(limitsFor(common, phase.warmup, common.smoke ? 200 : 10_000), (i) => {
      const tpl = new PutTemplate(ks, val);
      const conn = ctx.pool.conn(i);
      const rand = rng(i + 1);
      return async () => {
        const k = order === 'random' ? Math.floor(rand() * space) : space ? seq++ % space : seq++;
        await conn.unary(PATHS.put, tpl.forKey(k));
      };
    }, 'put'),
  };
}
