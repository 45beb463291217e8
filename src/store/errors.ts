/**
 * Domain errors of the store, named after etcd's. The gRPC layer maps each code to etcd's
 * status code and exact message string in one table (server/errors.ts).
 */
export type StoreErrorCode =
  | 'EmptyKey'
  | 'KeyNotFound'
  | 'ValueProvided'
  | 'LeaseProvided'
  | 'TooManyOps'
  | 'DuplicateKey'
  | 'InvalidSortOption'
  | 'Compacted'
  | 'FutureRev'
  | 'LeaseNotFound'
  | 'LeaseExist'
  | 'LeaseTTLTooLarge'
  | 'RequestTooLarge'
  | 'TooManyRequests'
  | 'Stopped'
  | 'Unavailable'
  | 'Timeout'
  | 'WatchCanceled'
  | 'AuthNotEnabled'
  /** A request failed for a reason that retrying cannot fix (a bug, a database constraint). */
  | 'Internal';

export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, detail?: string) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = 'StoreError';
  }
}

export function isStoreError(e: unknown): e is StoreError {
  return e instanceof StoreError;
}
