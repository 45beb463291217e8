import type { Sql } from '../db/sql.ts';
import { dbSize } from './dbsize.ts';

export interface PartitionSize {
  partition: string;
  /** Live rows per PostgreSQL's statistics (n_live_tup; an estimate, no scan). */
  rows: number;
  /** pg_total_relation_size: heap, indexes and TOAST. */
  bytes: number;
}

export interface StoreSample {
  dbSize: number;
  dbSizeInUse: number;
  /** Live keys per PostgreSQL's statistics of kv_current. */
  keys: number;
  revision: number;
  compactRevision: number;
  partitions: PartitionSize[];
  /** Connections of pgetcd instances (application_name pgetcd*) by state; "waiting": on a lock. */
  connections: Array<{ state: string; count: number }>;
}

/** Sizes and counts for /metrics, from catalog statistics: cheap, but not for every scrape. */
export async function sampleStore(sql: Sql): Promise<StoreSample> {
  const [sizes, parts, keys, meta, conns] = await Promise.all([
    dbSize(sql),
    sql`SELECT c.relname AS partition, COALESCE(s.n_live_tup, 0)::int8 AS rows, pg_total_relation_size(t.relid)::int8 AS bytes
        FROM pg_partition_tree(to_regclass('kv_log')) t
        JOIN pg_class c ON c.oid = t.relid
        LEFT JOIN pg_stat_user_tables s ON s.relid = t.relid
        WHERE t.isleaf ORDER BY c.relname` as unknown as Promise<PartitionSize[]>,
    sql`SELECT COALESCE(n_live_tup, 0)::int8 AS n FROM pg_stat_user_tables WHERE relid = to_regclass('kv_current')` as unknown as Promise<Array<{ n: number }>>,
    sql`SELECT revision, compact_revision FROM meta WHERE id = 1` as unknown as Promise<Array<{ revision: number; compact_revision: number }>>,
    sql`SELECT CASE WHEN wait_event_type = 'Lock' THEN 'waiting' ELSE COALESCE(state, 'unknown') END AS state, count(*)::int8 AS count
        FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'pgetcd%'
        GROUP BY 1 ORDER BY 1` as unknown as Promise<Array<{ state: string; count: number }>>,
  ]);
  return {
    ...sizes,
    keys: keys[0]?.n ?? 0,
    revision: meta[0]?.revision ?? 0,
    compactRevision: meta[0]?.compact_revision ?? 0,
    partitions: parts.map((p) => ({ partition: p.partition, rows: Number(p.rows), bytes: Number(p.bytes) })),
    connections: conns.map((c) => ({ state: c.state, count: Number(c.count) })),
  };
}
