import { StoreError } from '../store/errors.ts';

/** etcd's lease.MaxLeaseTTL: a larger requested TTL fails with "too large lease TTL". */
export const MAX_LEASE_TTL = 9_000_000_000n;

/**
 * etcd 3.5's minimum lease TTL in seconds. etcdserver derives it from the election timeout:
 * minTTL = (3 × ElectionTicks / 2) × heartbeat, rounded up to whole seconds. With the defaults
 * (--heartbeat-interval 100ms, --election-timeout 1000ms, so 10 ticks) that is
 * ceil(15 × 100ms) = ceil(1.5s) = 2 s. A smaller requested TTL is raised to it.
 */
export const MIN_LEASE_TTL = 2;

/** The extension etcd's lessor.Promote adds after a leader change: the election timeout. */
export const PROMOTE_EXTENSION_MS = 1000;

/** The TTL etcd grants for a requested (int64) TTL: raised to the minimum, or an error above the maximum. */
export function grantedTtl(requested: string | number | bigint): number {
  const ttl = BigInt(requested);
  if (ttl > MAX_LEASE_TTL) throw new StoreError('LeaseTTLTooLarge');
  return ttl < BigInt(MIN_LEASE_TTL) ? MIN_LEASE_TTL : Number(ttl);
}

/** A lease ID in canonical decimal form (int64; negative IDs are valid, 0 means "none"). */
export function canonicalId(id: string | number | bigint): string {
  return BigInt.asIntN(64, BigInt(id)).toString();
}
