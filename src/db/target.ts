/** Where PostgreSQL is: a URL for an external server, or a Unix socket folder for the embedded one. */
export interface PgTarget {
  url?: string;
  host?: string;
  port?: number;
  user?: string;
  database?: string;
}

/** Options for node-postgres (used by pg-listen and node-pg-migrate). */
export function pgClientConfig(t: PgTarget): { connectionString?: string; host?: string; port?: number; user?: string; database?: string } {
  if (t.url) return { connectionString: t.url };
  return { host: t.host, port: t.port, user: t.user, database: t.database };
}

/** Human-readable description without credentials, for logs. */
export function describeTarget(t: PgTarget): string {
  if (t.url) {
    try {
      const u = new URL(t.url);
      return `${u.protocol}//${u.hostname}${u.port ? ':' + u.port : ''}${u.pathname}`;
    } catch {
      return 'postgres (unparseable URL)';
    }
  }
  return `unix socket ${t.host}/.s.PGSQL.${t.port} database ${t.database}`;
}
