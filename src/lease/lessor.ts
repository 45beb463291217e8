import type { Sql } from '../db/sql.ts';
import type { Store } from '../store/store.ts';
import type { LeaseGrantResult } from '../store/types.ts';
import { isStoreError } from '../store/errors.ts';
import { randomLeaseId } from './ids.ts';
import { canonicalId, grantedTtl } from './limits.ts';
import { listLeases, timeToLive, type LeaseTimeToLive } from './queries.ts';
import { Renewer, type Renewal } from './renewer.ts';

export interface Granted {
  id: string;
  ttl: number;
  revision: number;
}

/** Attempts at drawing a fresh random ID before giving up (a collision is already improbable). */
const ID_ATTEMPTS = 8;

/**
 * etcd's lessor over PostgreSQL: grant and revoke go through the store's writer (they change
 * what Put may attach to and revoke deletes keys), renewals are batched UPDATEs, reads are
 * single statements. Knows nothing of gRPC.
 */
export class Lessor {
  readonly renewer: Renewer;

  constructor(
    private readonly store: Store,
    private readonly sql: Sql,
    /** Told about every local grant (the expiry loop wakes early for a short lease). */
    private readonly onGrant: (ttlMs: number) => void = () => undefined,
  ) {
    this.renewer = new Renewer(sql);
  }

  /** `id` '0' lets the server choose; `ttl` is the requested TTL (int64 as a decimal string). */
  async grant(id: string, ttl: string | number): Promise<Granted> {
    const t = grantedTtl(ttl);
    const wanted = canonicalId(id);
    let r: LeaseGrantResult;
    if (wanted !== '0') {
      r = await this.store.leaseGrant(wanted, t);
    } else {
      for (let i = 0; ; i++) {
        try {
          r = await this.store.leaseGrant(randomLeaseId(), t);
          break;
        } catch (err) {
          if (!(isStoreError(err) && err.code === 'LeaseExist') || i + 1 >= ID_ATTEMPTS) throw err;
        }
      }
    }
    this.onGrant(t * 1000);
    return { id: r.id, ttl: r.ttl, revision: r.header.revision };
  }

  async revoke(id: string): Promise<{ revision: number }> {
    const r = await this.store.leaseRevoke(canonicalId(id));
    return { revision: r.header.revision };
  }

  keepAlive(id: string): Promise<Renewal> {
    return this.renewer.renew(canonicalId(id));
  }

  timeToLive(id: string, keys: boolean): Promise<LeaseTimeToLive> {
    return timeToLive(this.sql, canonicalId(id), keys);
  }

  leases(): Promise<{ revision: number; ids: string[] }> {
    return listLeases(this.sql);
  }
}
