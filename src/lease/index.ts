import type { Component } from '../server/component.ts';
import type { ServerContext } from '../server/context.ts';
import { leaseService } from '../server/lease.ts';
import { isStoreError } from '../store/errors.ts';
import { LeaseExpirer } from './expirer.ts';
import { Lessor } from './lessor.ts';
import { PROMOTE_EXTENSION_MS } from './limits.ts';

/** Sleep bound of the expiry loop: below etcd's 2 s minimum TTL (see LeaseExpirer). */
const EXPIRY_MAX_SLEEP_MS = 1000;

/** The Lease service: grant/revoke through the writer, batched keep-alives, expiry by one elected instance. */
export function createLeaseComponent(ctx: ServerContext): Component {
  const log = ctx.log.child({ mod: 'lease' });
  const expirer = new LeaseExpirer({
    target: ctx.target,
    log,
    name: ctx.cfg.name,
    revoke: (id) => ctx.store.leaseRevoke(id).then(
      () => true,
      (err: unknown) => {
        if (isStoreError(err) && err.code === 'LeaseNotFound') return false; // revoked meanwhile
        throw err;
      },
    ),
    expired: (lagSeconds) => {
      ctx.metrics.leaseRevoked();
      ctx.metrics.leaseExpired(lagSeconds);
    },
    maxSleepMs: EXPIRY_MAX_SLEEP_MS,
    retryMs: 1000,
    electionPollMs: 250,
    extendMs: PROMOTE_EXTENSION_MS,
    batch: 1000,
    queryTimeoutMs: 30_000,
  });
  const lessor = new Lessor(ctx.store, ctx.sql, (ttlMs) => expirer.granted(ttlMs));
  const service = leaseService(ctx, lessor);
  return {
    services: { Lease: service.impl },
    start: () => expirer.start(),
    stop: async () => {
      service.closeStreams();
      await expirer.stop();
    },
  };
}
