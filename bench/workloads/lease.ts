import { PATHS, type LockStep } from '../grpc.ts';
import { closedLoop, limitsFor, parallel } from '../loop.ts';
import type { Opts } from '../options.ts';
import { leaseGrantRequest, leaseIdRequest, scanLease } from '../pb.ts';
import type { CommonOptions, Workload } from '../workload.ts';

/**
 * Lease keep-alive throughput: --leases N leases (TTL --ttl) are granted, then each client owns
 * one LeaseKeepAlive stream and keeps its share of the leases alive, one request in flight.
 */
export function leaseWorkload(o: Opts, common: CommonOptions): Workload {
  const n = o.int('leases', common.smoke ? 20 : 1000, 1);
  const ttl = o.int('ttl', 60, 1);
  let ids: bigint[] = [];
  return {
    name: 'lease',
    params: `clients(streams)=${common.clients} conns=${common.conns} leases=${n} ttl=${ttl}`,
    async setup(ctx) {
      ctx.note(`granting ${n} leases`);
      ids = new Array<bigint>(n);
      await parallel(Array.from({ length: n }, (_, i) => i), 16, async (i) => {
        const r = scanLease(await ctx.pool.conn(i).unary(PATHS.leaseGrant, leaseGrantRequest(ttl)));
        if (r.error || r.id === 0n) throw new Error(`LeaseGrant failed: ${r.error || 'no ID'}`);
        ids[i] = r.id;
      });
    },
    async run(ctx, phase) {
      const streams: LockStep[] = [];
      try {
        return await closedLoop(limitsFor(common, phase.warmup, common.smoke ? 200 : 20_000), (i) => {
          const stream = ctx.pool.conn(i).stream(PATHS.leaseKeepAlive);
          streams.push(stream);
          const mine = ids.filter((_, j) => j % common.clients === i % Math.min(common.clients, n)).map((id) => leaseIdRequest(id));
          let next = 0;
          return async () => {
            const r = scanLease(await stream.send(mine[next++ % mine.length]!));
            if (r.ttl <= 0) throw new Error(`keep-alive answered TTL ${r.ttl} (lease not found)`);
          };
        }, 'keep-alive');
      } finally {
        for (const s of streams) s.close();
      }
    },
    async teardown(ctx) {
      await parallel(ids, 16, async (id, i) => {
        await ctx.pool.conn(i).unary(PATHS.leaseRevoke, leaseIdRequest(id)).catch(() => undefined);
      });
    },
  };
}
