import { randomBytes } from 'node:crypto';

/**
 * A server-chosen lease ID: a random positive int63, as etcd only hands out positive IDs.
 * 63 random bits make a collision between instances improbable; the grant still fails with
 * LeaseExist on one, and the caller then draws again, so an ID is never reused while its
 * lease exists.
 */
export function randomLeaseId(): string {
  for (;;) {
    const id = randomBytes(8).readBigUInt64BE(0) & 0x7fff_ffff_ffff_ffffn;
    if (id !== 0n) return id.toString();
  }
}
