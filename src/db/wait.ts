import { ConfigError } from '../config/load.ts';
import type { Logger } from '../log.ts';
import { connectPrimary, STANDBY_CODE } from './session.ts';
import { describeTarget, type PgTarget } from './target.ts';

/** Failures that mean "not up yet": worth waiting for. Anything else stops the start. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ENOENT', 'EPIPE',
  '57P03', // cannot_connect_now: the database system is starting up / shutting down
  '53300', // too_many_connections
  '08006', '08001', '08004',
  STANDBY_CODE, // every host of a multi-host endpoint is a standby: a failover is under way
]);

/** TLS handshake failures: the configuration is wrong, waiting will not help. */
const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_UNTRUSTED', 'ERR_SSL_WRONG_VERSION_NUMBER',
]);

function errCode(err: unknown): string | undefined {
  const e = err as { code?: unknown };
  return typeof e?.code === 'string' ? e.code : undefined;
}

function errMessage(err: unknown): string {
  const e = err as { message?: unknown; errors?: unknown };
  if (Array.isArray(e?.errors) && e.errors.length > 0) return errMessage(e.errors[0]);
  return typeof e?.message === 'string' && e.message !== '' ? e.message.split('\n')[0]! : String(err);
}

/** One connection to the primary (the hosts of a multi-host endpoint in order) and a `SELECT 1`. */
async function connectOnce(target: PgTarget, timeoutMs: number): Promise<void> {
  const client = await connectPrimary(target, { applicationName: 'pgetcd', connectTimeoutMs: timeoutMs, onError: () => undefined });
  try {
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Waits for PostgreSQL to accept a connection, retrying with backoff (250 ms doubling to 5 s)
 * and one log line per failed attempt, for up to `timeoutMs` (sidecars start before their
 * database). A TLS or authentication failure is a configuration mistake: ConfigError at once.
 */
export async function waitForDatabase(target: PgTarget, timeoutMs: number, log: Logger): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      await connectOnce(target, Math.max(1000, Math.min(10_000, deadline - Date.now())));
      if (attempt > 1) log.info({ attempt }, 'PostgreSQL is up');
      return;
    } catch (err) {
      const code = errCode(err);
      const message = errMessage(err);
      // The server's own words for a configuration mistake (connectPrimary wraps them in
      // "no writable PostgreSQL at <target>: ...", and the target is named here already).
      const cause = (err as { cause?: unknown }).cause;
      const detail = cause === undefined ? message : errMessage(cause);
      if (code && TLS_CODES.has(code)) {
        throw new ConfigError(`--endpoint: TLS to PostgreSQL at ${describeTarget(target)} failed: ${detail} (${code}; check sslrootcert/--datastore-cafile and the host name)`);
      }
      if (/does not support SSL/i.test(message)) throw new ConfigError(`--endpoint: PostgreSQL at ${describeTarget(target)} does not support TLS, but sslmode asks for it`);
      if (code === '28P01' || code === '28000') throw new ConfigError(`--endpoint: PostgreSQL at ${describeTarget(target)} refused the login: ${detail}`);
      if (code === '3D000') throw new ConfigError(`--endpoint: ${detail}`);
      const transient = (code !== undefined && TRANSIENT_CODES.has(code)) || /timeout|terminated/i.test(message);
      const left = deadline - Date.now();
      if (!transient || left <= 0) {
        throw new Error(`PostgreSQL at ${describeTarget(target)} is not reachable: ${message}${transient ? ` (gave up after ${attempt} attempts; --datastore-wait-timeout)` : ''}`);
      }
      const wait = Math.min(delay, left);
      log.warn({ attempt, code, error: message, retryInMs: wait, database: describeTarget(target) }, 'PostgreSQL not reachable yet; retrying');
      await new Promise((r) => setTimeout(r, wait));
      delay = Math.min(delay * 2, 5000);
    }
  }
}
