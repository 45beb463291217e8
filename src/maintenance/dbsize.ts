import type { Sql } from '../db/sql.ts';
import { dbCall } from '../store/pgerrors.ts';

/** pgetcd's tables; partitioned ones are counted with all their partitions. */
export const PGETCD_TABLES = ['meta', 'compaction', 'kv_log', 'kv_current', 'leases'];

export interface DbSize {
  /** Bytes on disk of pgetcd's tables with their indexes and TOAST (pg_total_relation_size). */
  dbSize: number;
  /**
   * Estimated bytes holding live rows: each table's total size scaled by its share of live
   * tuples (n_live_tup / (n_live_tup + n_dead_tup) from PostgreSQL's statistics); the rest is
   * space that VACUUM frees for reuse, like the free pages etcd's defragmentation reclaims.
   */
  dbSizeInUse: number;
}

export async function dbSize(sql: Sql): Promise<DbSize> {
  const [r] = (await dbCall(() => sql`
      SELECT COALESCE(sum(pg_total_relation_size(t.relid)), 0)::int8 AS size,
             COALESCE(sum(pg_total_relation_size(t.relid) *
               CASE WHEN COALESCE(s.n_live_tup + s.n_dead_tup, 0) = 0 THEN 1
                    ELSE s.n_live_tup::float8 / (s.n_live_tup + s.n_dead_tup) END), 0)::int8 AS in_use
      FROM unnest(${sql.array(PGETCD_TABLES, 25)}::text[]) AS r(name)
      CROSS JOIN LATERAL pg_partition_tree(to_regclass(r.name)) t
      LEFT JOIN pg_stat_user_tables s ON s.relid = t.relid
      WHERE t.isleaf`)) as unknown as Array<{ size: number; in_use: number }>;
  return { dbSize: r?.size ?? 0, dbSizeInUse: r?.in_use ?? 0 };
}

/**
 * dbSize alone (no statistics views): what the quota compares every second. pg_stat_user_tables
 * is the costly part of dbSize() (a row built for every table of the database).
 */
export async function dbTotalSize(sql: Sql): Promise<number> {
  const [r] = (await dbCall(() => sql`
      SELECT COALESCE(sum(pg_total_relation_size(t.relid)), 0)::int8 AS size
      FROM unnest(${sql.array(PGETCD_TABLES, 25)}::text[]) AS r(name)
      CROSS JOIN LATERAL pg_partition_tree(to_regclass(r.name)) t
      WHERE t.isleaf`)) as unknown as Array<{ size: number }>;
  return Number(r?.size ?? 0);
}
