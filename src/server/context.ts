import * as grpc from '@grpc/grpc-js';
import type { Config } from '../config.ts';
import type { DbHealth } from '../db/health.ts';
import type { Sql } from '../db/sql.ts';
import type { PgTarget } from '../db/target.ts';
import type { Logger } from '../log.ts';
import type { AlarmStore } from '../maintenance/alarms.ts';
import type { BackendQuota } from '../maintenance/quota.ts';
import type { Metrics } from '../metrics/index.ts';
import type { Store } from '../store/store.ts';
import { toGrpcError } from './errors.ts';
import { requestSize } from './proto.ts';
import { warnIfSlow } from './slow.ts';
import type { WireHeader, WireUint64 } from './wire.ts';

/** What every gRPC service of one pgetcd instance shares. */
export interface ServerContext {
  cfg: Config;
  store: Store;
  /** The pool (for components that need their own queries, e.g. lease renewals). */
  sql: Sql;
  /** Where the database is (for components that need a dedicated connection, e.g. LISTEN). */
  target: PgTarget;
  log: Logger;
  /** Where handlers count etcd's request metrics (no-ops with --metrics=off). */
  metrics: Metrics;
  clusterId: string;
  memberId: string;
  /** etcd's --max-request-bytes: larger write requests get "request is too large". */
  maxRequestBytes: number;
  header(revision: number): WireHeader;
  /** Whether the primary is reachable (requests fail fast with UNAVAILABLE while it is not). */
  health?: DbHealth;
  /** The cluster's alarms (etcd's Alarm API). */
  alarms: AlarmStore;
  /** etcd's backend quota: refuses requests while NOSPACE or CORRUPT is active (server/quota.ts). */
  quota: BackendQuota;
}

export const RAFT_TERM = 2;

/** A uint64 as the {low, high} words protobufjs takes without parsing a decimal string each time. */
function uint64Words(decimal: string): WireUint64 {
  const v = BigInt.asUintN(64, BigInt(decimal));
  return { low: Number(v & 0xffffffffn) | 0, high: Number(v >> 32n) | 0, unsigned: true };
}

export function makeHeaderFn(clusterId: string, memberId: string): (revision: number) => WireHeader {
  const cluster = uint64Words(clusterId);
  const member = uint64Words(memberId);
  return (revision) => ({ cluster_id: cluster, member_id: member, revision, raft_term: RAFT_TERM });
}

/** A unary handler from an async function; errors become etcd's statuses. */
export function unary<Req extends object, Res>(
  ctx: ServerContext,
  f: (req: Req, size: number) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const t0 = performance.now();
    const done = (): void => warnIfSlow(ctx.log, ctx.cfg.warningApplyDuration, call.getPath(), call.request, t0);
    let p: Promise<Res>;
    try {
      p = ctx.health ? ctx.health.guard(() => f(call.request, requestSize(call.request))) : f(call.request, requestSize(call.request));
    } catch (err) {
      callback(toGrpcError(err, ctx.log));
      return;
    }
    p.then((res) => { done(); callback(null, res); }, (err: unknown) => {
      done();
      const status = toGrpcError(err, ctx.log);
      // A lost connection may be a failover: the health probe decides whether to fail fast.
      if (status.code === grpc.status.UNAVAILABLE) ctx.health?.suspect(err);
      callback(status);
    });
  };
}
