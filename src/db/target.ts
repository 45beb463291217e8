import { checkPrimaryAttrs, describeHosts, isMultiHost, perHostUrls } from './hosts.ts';

/** Where PostgreSQL is: a URL for an external server, or a Unix socket folder for the embedded one. */
export interface PgTarget {
  url?: string;
  host?: string;
  port?: number;
  user?: string;
  database?: string;
}

export interface PgClientConfig { connectionString?: string; host?: string; port?: number; user?: string; database?: string }

/** Options for node-postgres, one per host to try in order (a multi-host URL gives several). */
export function pgClientConfigs(t: PgTarget): PgClientConfig[] {
  if (t.url) return perHostUrls(t.url).map((connectionString) => ({ connectionString }));
  return [{ host: t.host, port: t.port, user: t.user, database: t.database }];
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
