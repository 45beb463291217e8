import pg from 'pg';
import { describeTarget, pgClientConfigs, type PgTarget } from './target.ts';

/** Error code of connectPrimary when every host answered but none is a primary (mid-failover). */
export const STANDBY_CODE = 'PGETCD_STANDBY';

export interface SessionOptions {
  applicationName: string;
  /** Attached before connecting, so an error during or after the handshake never goes unhandled. */
  onError: (err: Error) => void;
  connectTimeoutMs?: number;
  /** Keep TCP keepalives short on the server side too, so a vanished session frees its locks in ~11 s. */
  serverKeepalives?: boolean;
}

/**
 * A dedicated node-postgres session on the primary: the hosts of the endpoint are tried in order
 * and one in recovery (a hot standby) is skipped, as libpq does with
 * target_session_attrs=read-write. Used for every session pgetcd holds outside the postgres.js
 * pools (member registration, lease expiry, LISTEN, migrations).
 */
export async function connectPrimary(target: PgTarget, opts: SessionOptions): Promise<pg.Client> {
  let lastErr: unknown;
  for (const cfg of pgClientConfigs(target)) {
    const c = new pg.Client({
      ...cfg,
      application_name: opts.applicationName.slice(0, 63),
      keepAlive: true,
      keepAliveInitialDelayMillis: 5000,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    });
    c.on('error', opts.onError);
    try {
      await c.connect();
      const r = await c.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby');
      if (r.rows[0]?.standby) {
        lastErr = Object.assign(new Error('server is a standby (in recovery)'), { code: STANDBY_CODE });
        await c.end().catch(() => undefined);
        continue;
      }
      if (opts.serverKeepalives) {
        // Ignored on Unix sockets.
        await c.query('SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3');
      }
      return c;
    } catch (err) {
      lastErr = err;
      c.removeListener('error', opts.onError);
      c.on('error', () => undefined);
      await c.end().catch(() => undefined);
    }
  }
  const why = lastErr instanceof Error ? lastErr.message : String(lastErr);
  // The last host's error code is kept, so callers can tell a refused login from a server not up yet.
  const code = (lastErr as { code?: unknown } | undefined)?.code;
  throw Object.assign(new Error(`no writable PostgreSQL at ${describeTarget(target)}: ${why}`), { cause: lastErr, ...(typeof code === 'string' ? { code } : {}) });
}
