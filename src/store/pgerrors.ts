import { StoreError } from './errors.ts';

const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOENT', 'ETIMEDOUT', 'EHOSTUNREACH',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT',
]);

/**
 * Postgres being away (restarting, failing over, out of connections) is not a client error:
 * etcd clients see UNAVAILABLE and retry. Returns undefined for any other error.
 */
export function toUnavailable(err: unknown): StoreError | undefined {
  if (err instanceof StoreError) return err.code === 'Unavailable' || err.code === 'Stopped' ? err : undefined;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  // SQLSTATE classes: 08 connection exception, 57 operator intervention (shutdown),
  // 53 insufficient resources; 40001/40P01 are retryable conflicts.
  // 25006: a read-only transaction (the server became a standby under us during a failover).
  if (CONNECTION_CODES.has(code) || code === '25006' || code.startsWith('08') || code.startsWith('57') || code.startsWith('53') || code === '40001' || code === '40P01') {
    return new StoreError('Unavailable', code);
  }
  return undefined;
}

/** Runs a database call; a lost or unavailable database comes out as StoreError('Unavailable'). */
export async function dbCall<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    throw toUnavailable(err) ?? err;
  }
}
