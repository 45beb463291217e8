import type { ConnectionOptions } from 'node:tls';
import { checkPrimaryAttrs, describeHosts, isMultiHost, perHostUrls } from './hosts.ts';

/**
 * Where PostgreSQL is: a URL for an external server, or a Unix socket folder for the embedded one.
 * `ssl` and `password` are resolved once (db/endpoint.ts) and applied to every connection; the
 * URL itself then carries neither libpq's TLS parameters nor a password.
 */
export interface PgTarget {
  url?: string;
  host?: string;
  port?: number;
  user?: string;
  database?: string;
  ssl?: ConnectionOptions;
  password?: string;
}

export interface PgClientConfig {
  host?: string;
  port?: number;
  user?: string;
  database?: string;
  password?: string;
  ssl: ConnectionOptions | false;
  [param: string]: unknown;
}

/**
 * One host's URL as node-postgres options. Taken apart here rather than passed as
 * connectionString: pg lets the string's (empty) password and its ssl override explicit options.
 * Other URL parameters (application_name, options, ...) pass through.
 */
function fromUrl(url: string, auth: Pick<PgClientConfig, 'ssl' | 'password'>): PgClientConfig {
  const u = new URL(url);
  return {
    ...Object.fromEntries(u.searchParams),
    host: decodeURIComponent(u.hostname.replace(/^\[|\]$/g, '')) || 'localhost',
    port: u.port ? Number(u.port) : 5432,
    ...(u.username ? { user: decodeURIComponent(u.username) } : {}),
    ...(u.pathname.length > 1 ? { database: decodeURIComponent(u.pathname.slice(1)) } : {}),
    ...auth,
  };
}

/** Options for node-postgres, one per host to try in order (a multi-host URL gives several). */
export function pgClientConfigs(t: PgTarget): PgClientConfig[] {
  // Copies: pg makes the key non-enumerable on the object it is given, which would hide it from postgres.js.
  const auth = () => ({ ssl: t.ssl ? { ...t.ssl } : (false as const), ...(t.password !== undefined ? { password: t.password } : {}) });
  if (t.url) return perHostUrls(t.url).map((u) => fromUrl(u, auth()));
  return [{ host: t.host, port: t.port, user: t.user, database: t.database, ...auth() }];
}

/** Options for node-postgres for the first (or only) host. */
export function pgClientConfig(t: PgTarget): PgClientConfig {
  return pgClientConfigs(t)[0]!;
}

/** Human-readable description without credentials, for logs. */
export function describeTarget(t: PgTarget): string {
  if (t.url) {
    if (isMultiHost(t.url)) return `postgres hosts ${describeHosts(t.url).join(',')}`;
    try {
      const u = new URL(t.url);
      return `${u.protocol}//${u.hostname}${u.port ? ':' + u.port : ''}${u.pathname}`;
    } catch {
      return 'postgres (unparseable URL)';
    }
  }
  return `unix socket ${t.host}/.s.PGSQL.${t.port} database ${t.database}`;
}

/**
 * A postgres:// URL as a target. `?host=/some/dir` (libpq's way to name a Unix socket folder)
 * becomes a socket target, which both drivers understand.
 */
export function targetFromUrl(url: string): PgTarget {
  let u: URL;
  try {
    const each = perHostUrls(url).map((x) => new URL(x));
    u = each[0]!;
  } catch {
    throw new Error('the database endpoint is not a valid postgres:// URL');
  }
  checkPrimaryAttrs(url);
  if (isMultiHost(url)) return { url };
  const host = u.searchParams.get('host');
  if (host && host.startsWith('/')) {
    return {
      host,
      port: u.port ? Number(u.port) : 5432,
      user: decodeURIComponent(u.username) || 'postgres',
      database: decodeURIComponent(u.pathname.slice(1)) || 'postgres',
    };
  }
  return { url };
}

export function targetToUrl(t: PgTarget): string {
  if (t.url) return t.url;
  return `postgres://${encodeURIComponent(t.user ?? 'postgres')}@localhost:${t.port ?? 5432}/${encodeURIComponent(t.database ?? 'postgres')}?host=${encodeURIComponent(t.host ?? '/tmp')}`;
}
