import type { ServerContext } from './context.ts';
import { ALARM_ERRORS, RpcError } from './errors.ts';
import type { WirePutRequest, WireRequestOp, WireTxnRequest } from './wire.ts';

/** etcd's estimate of what a request adds to the backend (server/storage/quota.go). */
const KV_OVERHEAD = 256;
export const LEASE_COST = 64;

export function putCost(r: WirePutRequest): number {
  return KV_OVERHEAD + (r.key?.length ?? 0) + (r.value?.length ?? 0);
}

/** The larger of the two branches: puts count, nested txns' puts too; ranges and deletes add nothing. */
export function txnCost(r: WireTxnRequest): number {
  const branch = (ops: WireRequestOp[] | undefined): number => {
    let n = 0;
    for (const op of ops ?? []) {
      if (op.request_put) n += putCost(op.request_put);
      else if (op.request_txn) n += txnCost(op.request_txn);
    }
    return n;
  };
  return Math.max(branch(r.success), branch(r.failure));
}

/** etcd's IsTxnReadonly: every operation of both branches is a range (a nested txn is not). */
export function txnReadOnly(r: WireTxnRequest): boolean {
  const reads = (ops: WireRequestOp[] | undefined): boolean => (ops ?? []).every((op) => !!op.request_range);
  return reads(r.success) && reads(r.failure);
}

/**
 * Undefined when a write request costing `cost` bytes may run now; else a promise that rejects with
 * etcd's error for the active alarm (or resolves when a fresh measurement lets it through).
 * Handlers await it only when there is one, so the common path adds no promise.
 */
export function admit(ctx: ServerContext, cost: number): Promise<void> | undefined {
  const pending = ctx.quota.admit(cost);
  if (!pending) return undefined;
  return pending.then((refusal) => {
    if (refusal) throw new RpcError(ALARM_ERRORS[refusal]);
  });
}
