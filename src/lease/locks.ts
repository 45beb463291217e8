/**
 * The two session-level advisory locks of the lease expiry role (per database, so several
 * pgetcd clusters can share one PostgreSQL server):
 *
 * - ELECTION: whoever holds it is the one instance that expires leases. Standby instances wait
 *   for it with a blocking pg_advisory_lock on their own dedicated session, so the role moves
 *   as soon as the holder's session ends (process killed, connection lost).
 * - PROMOTED: taken by the holder only after it has extended every lease (etcd's Promote).
 *   Keep-alives renew a lease that is past its expiry only while nobody holds PROMOTED: then
 *   nobody is expiring leases and the next holder would extend that lease anyway; once
 *   PROMOTED is held, a lease past its expiry is dead, as in etcd.
 */
export interface AdvisoryKey {
  /** The bigint passed to pg_advisory_lock. */
  key: string;
  /** How pg_locks shows it: classid = high 32 bits, objid = low 32 bits, objsubid = 1. */
  classid: number;
  objid: number;
}

function advisoryKey(k: bigint): AdvisoryKey {
  return { key: k.toString(), classid: Number(k >> 32n), objid: Number(k & 0xffff_ffffn) };
}

/** "pgetcd" in ASCII, then a role number. */
export const ELECTION_LOCK = advisoryKey(0x7067_6574_6364_0001n);
export const PROMOTED_LOCK = advisoryKey(0x7067_6574_6364_0002n);
