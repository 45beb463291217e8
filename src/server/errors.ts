import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log.ts';
import { StoreError, type StoreErrorCode } from '../store/errors.ts';

/** etcd's gRPC errors (api/v3rpc/rpctypes): status code and exact message; clients match the text. */
const TABLE: Record<StoreErrorCode, [grpc.status, string]> = {
  EmptyKey: [grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided'],
  KeyNotFound: [grpc.status.INVALID_ARGUMENT, 'etcdserver: key not found'],
  ValueProvided: [grpc.status.INVALID_ARGUMENT, 'etcdserver: value is provided'],
  LeaseProvided: [grpc.status.INVALID_ARGUMENT, 'etcdserver: lease is provided'],
  TooManyOps: [grpc.status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'],
  DuplicateKey: [grpc.status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'],
  InvalidSortOption: [grpc.status.INVALID_ARGUMENT, 'etcdserver: invalid sort option'],
  Compacted: [grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'],
  FutureRev: [grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'],
  LeaseNotFound: [grpc.status.NOT_FOUND, 'etcdserver: requested lease not found'],
  LeaseExist: [grpc.status.FAILED_PRECONDITION, 'etcdserver: lease already exists'],
  LeaseTTLTooLarge: [grpc.status.OUT_OF_RANGE, 'etcdserver: too large lease TTL'],
  RequestTooLarge: [grpc.status.INVALID_ARGUMENT, 'etcdserver: request is too large'],
  TooManyRequests: [grpc.status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests'],
  Stopped: [grpc.status.UNAVAILABLE, 'etcdserver: server stopped'],
  Unavailable: [grpc.status.UNAVAILABLE, 'etcdserver: request timed out'],
  Timeout: [grpc.status.UNAVAILABLE, 'etcdserver: request timed out'],
  WatchCanceled: [grpc.status.CANCELLED, 'etcdserver: watch canceled'],
  AuthNotEnabled: [grpc.status.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled'],
  // Not one of etcd's errors: etcd has no request that fails after it was accepted. INTERNAL is
  // not retried by clientv3; the log has the cause.
  Internal: [grpc.status.INTERNAL, 'etcdserver: internal error; the server log has the cause'],
};

export interface GrpcError {
  code: grpc.status;
  details: string;
}

/** A handler's answer that is a gRPC status rather than a store error (membership, UNIMPLEMENTED...). */
export class RpcError extends Error {
  constructor(readonly status: GrpcError) {
    super(status.details);
    this.name = 'RpcError';
  }
}

export function toGrpcError(err: unknown, log?: Logger): GrpcError {
  if (err instanceof RpcError) return err.status;
  if (err instanceof StoreError) {
    const [code, details] = TABLE[err.code];
    if (err.code === 'Unavailable') log?.warn({ reason: err.message }, 'request failed: database unavailable');
    return { code, details };
  }
  log?.error({ err }, 'unexpected error');
  return { code: grpc.status.UNKNOWN, details: 'etcdserver: unknown error' };
}

/** etcd's errors of an active alarm (api/v3rpc/rpctypes: ErrGRPCNoSpace, ErrGRPCCorrupt). */
export const ALARM_ERRORS = {
  NoSpace: { code: grpc.status.RESOURCE_EXHAUSTED, details: 'etcdserver: mvcc: database space exceeded' },
  Corrupt: { code: grpc.status.DATA_LOSS, details: 'etcdserver: corrupt cluster' },
} as const satisfies Record<string, GrpcError>;

export function etcdError(code: StoreErrorCode): GrpcError {
  const [c, details] = TABLE[code];
  return { code: c, details };
}

/** etcd errors that do not come from the store: membership, leadership, downgrade (api/v3rpc/rpctypes). */
export const CLUSTER_ERRORS = {
  MemberNotFound: { code: grpc.status.NOT_FOUND, details: 'etcdserver: member not found' },
  MemberNotLearner: { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: can only promote a learner member' },
  MemberNotEnoughStarted: { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: re-configuration failed due to not enough started members' },
  BadLeaderTransferee: { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: bad leader transferee' },
  NoInflightDowngrade: { code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: no inflight downgrade job' },
} satisfies Record<string, GrpcError>;
