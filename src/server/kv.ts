import type * as grpc from '@grpc/grpc-js';
import { checkSize, unary, type ServerContext } from './context.ts';
import { deleteFromWire, putFromWire, rangeFromWire, txnFromWire, txnToWire } from './convert.ts';
import type { WireCompactionRequest, WireDeleteRangeRequest, WirePutRequest, WireRangeRequest, WireTxnRequest } from './wire.ts';

/** etcdserverpb.KV: translation only; semantics live in the store. */
export function kvService(ctx: ServerContext): grpc.UntypedServiceImplementation {
  return {
    Range: unary(ctx, async (req: WireRangeRequest) => {
      const r = await ctx.store.range(rangeFromWire(req));
      return { header: ctx.header(r.header.revision), kvs: r.kvs, more: r.more, count: r.count };
    }),
    Put: unary(ctx, async (req: WirePutRequest, size) => {
      checkSize(ctx, size);
      const r = await ctx.store.put(putFromWire(req), size);
      return { header: ctx.header(r.header.revision), prev_kv: r.prev_kv };
    }),
    DeleteRange: unary(ctx, async (req: WireDeleteRangeRequest, size) => {
      checkSize(ctx, size);
      const r = await ctx.store.deleteRange(deleteFromWire(req), size);
      return { header: ctx.header(r.header.revision), deleted: r.deleted, prev_kvs: r.prev_kvs };
    }),
    Txn: unary(ctx, async (req: WireTxnRequest, size) => {
      checkSize(ctx, size);
      const r = await ctx.store.txn(txnFromWire(req), size);
      return { header: ctx.header(r.header.revision), ...txnToWire(r) };
    }),
    Compact: unary(ctx, async (req: WireCompactionRequest) => {
      const r = await ctx.store.compact(Number(req.revision), req.physical);
      return { header: ctx.header(r.header.revision) };
    }),
  };
}
