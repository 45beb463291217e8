import postgres from 'postgres';
import type { PgTarget } from '../src/db/target.ts';

export interface DbSnapshot {
  /** pg_stat_database xact_commit + xact_rollback (flushed by backends at most once a second). */
  xacts: number;
  /** Next transaction ID: the difference counts transactions that wrote (exact, immediate). */
  nextXid: number;
  /** WAL position in bytes. */
  walBytes: number;
}

export interface StatementRow {
  query: string;
  calls: number;
  totalMs: number;
  rows: number;
}

/**
 * Database counters for statements/transactions per request, read over a connection of our
 * own (application_name pgetcd-bench). pg_stat_statements is used when the server preloads it.
 */
export class DbStats {
  private readonly sql: postgres.Sql;
  pgss = false;

  constructor(target: PgTarget) {
    const opts = { max: 1, idle_timeout: 0, connect_timeout: 10, onnotice: () => undefined, connection: { application_name: 'pgetcd-bench' } };
    this.sql = target.url
      ? postgres(target.url, opts)
      : postgres({ ...opts, host: target.host, port: target.port, user: target.user, database: target.database });
  }

  async init(): Promise<void> {
    const [row] = await this.sql<Array<{ libs: string }>>`SELECT current_setting('shared_preload_libraries') AS libs`;
    if (!row?.libs.includes('pg_stat_statements')) return;
    try {
      await this.sql`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`;
      this.pgss = true;
    } catch {
      this.pgss = false;
    }
  }

  async snapshot(): Promise<DbSnapshot> {
    const [r] = await this.sql<Array<{ xacts: string; xid: string; wal: string }>>`
      SELECT (xact_commit + xact_rollback)::text AS xacts,
             pg_snapshot_xmax(pg_current_snapshot())::text AS xid,
             pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS wal
        FROM pg_stat_database WHERE datname = current_database()`;
    return { xacts: Number(r!.xacts), nextXid: Number(r!.xid), walBytes: Number(r!.wal) };
  }

  async resetStatements(): Promise<void> {
    if (this.pgss) await this.sql`SELECT pg_stat_statements_reset()`;
  }

  /** Statements run since the reset, by everyone but this connection's own monitoring queries. */
  async statements(): Promise<StatementRow[]> {
    if (!this.pgss) return [];
    const rows = await this.sql<Array<{ query: string; calls: string; total: number; rows: string }>>`
      SELECT query, calls::text AS calls, total_exec_time AS total, rows::text AS rows
        FROM pg_stat_statements
       WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%pg_current_snapshot%'
       ORDER BY calls DESC`;
    return rows.map((r) => ({ query: r.query, calls: Number(r.calls), totalMs: Number(r.total), rows: Number(r.rows) }));
  }

  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }
}
