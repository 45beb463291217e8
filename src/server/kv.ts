import type * as grpc from '@grpc/grpc-js';
import { RAFT_TERM, unary, type ServerContext } from './context.ts';
import { RangeResponseEncoder } from './rangecodec.ts';
import {
  deleteFromWire, putFromWire, raftEntrySize, raftEnvelopeBytes, rangeFromWire, txnFromWire, txnToWire,
} from './convert.ts';
import type { TxnResponse } from '../store/types.ts';
import { admit, putCost, txnCost, txnReadOnly } from './quota.ts';
import type { WireCompactionRequest, WireDeleteRangeRequest, WirePutRequest, WireRangeRequest, WireTxnRequest } from './wire.ts';

/** etcd counts the operations of the branch a txn took, nested txns' included (mvcc/metrics_txn.go). */
function countTxnOps(ctx: ServerContext, r: TxnResponse): void {
  const n = { ranges: 0, puts: 0, deletes: 0 };
  const walk = (t: TxnResponse): void => {
    for (const op of t.responses) {
      if (op.type === 'range') n.ranges++;
      else if (op.type === 'put') n.puts++;
      else if (op.type === 'delete') n.deletes++;
      else walk(op.txn);
    }
  };
  walk(r);
  ctx.metrics.kvOps(n.ranges, n.puts, n.deletes);
}

/** etcdserverpb.KV: translation only; semantics live in the store. */
export function kvService(ctx: ServerContext): grpc.UntypedServiceImplementation {
  const envelope = raftEnvelopeBytes(ctx.memberId);
  const rangeEncoder = new RangeResponseEncoder(ctx.clusterId, ctx.memberId, RAFT_TERM);
  return {
    // Encoded by hand (rangecodec.ts): a Buffer response passes the KV definition's serializer as is.
    Range: unary(ctx, async (req: WireRangeRequest) => {
      const r = await ctx.store.rangePacked(rangeFromWire(req));
      ctx.metrics.kvOps(1, 0, 0);
      return rangeEncoder.encodePacked(r);
    }),
    // The store checks each write, then its size as etcd counts it (the raft entry carrying it).
    // First, as etcd's quota server does: nothing that adds data while NOSPACE is active.
    Put: unary(ctx, async (req: WirePutRequest, size) => {
      const refused = admit(ctx, putCost(req));
      if (refused) await refused;
      const r = await ctx.store.put(putFromWire(req), raftEntrySize(envelope, size));
      ctx.metrics.kvOps(0, 1, 0);
      return { header: ctx.header(r.header.revision), prev_kv: r.prev_kv };
    }),
    DeleteRange: unary(ctx, async (req: WireDeleteRangeRequest, size) => {
      const refused = admit(ctx, 0);
      if (refused) await refused;
      const r = await ctx.store.deleteRange(deleteFromWire(req), raftEntrySize(envelope, size));
      ctx.metrics.kvOps(0, 0, 1);
      return { header: ctx.header(r.header.revision), deleted: r.deleted, prev_kvs: r.prev_kvs };
    }),
    Txn: unary(ctx, async (req: WireTxnRequest, size) => {
      // A read-only txn is served like a Range, outside the quota and alarm checks (etcd).
      const refused = txnReadOnly(req) ? undefined : admit(ctx, txnCost(req));
      if (refused) await refused;
      const r = await ctx.store.txn(txnFromWire(req), raftEntrySize(envelope, size));
      if (ctx.metrics.enabled) countTxnOps(ctx, r);
      return { header: ctx.header(r.header.revision), ...txnToWire(r) };
    }),
    Compact: unary(ctx, async (req: WireCompactionRequest) => {
      const refused = admit(ctx, 0);
      if (refused) await refused;
      const r = await ctx.store.compact(Number(req.revision), req.physical);
      return { header: ctx.header(r.header.revision) };
    }),
  };
}
