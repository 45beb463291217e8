import postgres from 'postgres';
import { installArrayTypes } from './pgarrays.ts';
import { isMultiHost } from './hosts.ts';
import type { PgTarget } from './target.ts';

export type Sql = postgres.Sql<Record<string, never>>;

export interface SqlOptions {
  max?: number;
  onnotice?: (n: postgres.Notice) => void;
  /** Called when a connection of the pool closes. */
  onclose?: () => void;
  /** Seconds before a connection is replaced (postgres.js default 30-60 min); 0 = never. */
  maxLifetime?: number;
}

/**
 * postgres.js pool. int8 comes back as a JS number (revisions stay far below 2^53); lease IDs,
 * which use the whole int64 range, are selected as text by the queries that need them.
 * fetch_types is off: postgres.js would run an unguarded pg_type query on every new connection,
 * whose failure (a backend terminated, a restart) is an unhandled rejection; the array types come
 * from pgarrays.ts instead.
 */
export function createSql(t: PgTarget, opts: SqlOptions = {}): Sql {
  const common = {
    max: opts.max ?? 10,
    idle_timeout: 0,
    connect_timeout: 10,
    fetch_types: false,
    onnotice: opts.onnotice ?? (() => undefined),
    ...(opts.onclose ? { onclose: opts.onclose } : {}),
    ...(opts.maxLifetime !== undefined ? { max_lifetime: opts.maxLifetime } : {}),
    connection: { application_name: 'pgetcd' },
    ssl: t.ssl ? { ...t.ssl } : false,
    ...(t.password !== undefined ? { password: t.password } : {}),
    types: {
      int8num: {
        to: 20,
        from: [20],
        serialize: (x: number | bigint | string) => String(x),
        parse: (x: string) => Number(x),
      },
    },
  };
  // A multi-host endpoint: connect to the primary only (postgres.js's "read-write" looks at
  // default_transaction_read_only, which a hot standby reports off; "primary" asks in_hot_standby).
  const sql = t.url
    ? postgres(t.url, { ...common, ...(isMultiHost(t.url) ? { target_session_attrs: 'primary' as const } : {}) })
    : postgres({ ...common, host: t.host, port: t.port, user: t.user, database: t.database });
  installArrayTypes(sql.options);
  return sql as unknown as Sql;
}
