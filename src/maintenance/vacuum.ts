import type { Sql } from '../db/sql.ts';
import { dbCall } from '../store/pgerrors.ts';
import { PGETCD_TABLES } from './dbsize.ts';

/**
 * etcd's Defragment returns free pages to the file system; the PostgreSQL counterpart that is
 * safe online is a plain VACUUM of pgetcd's tables (partitions included): dead rows become
 * reusable space and statistics stay fresh, without the exclusive lock VACUUM FULL needs.
 * `full` rewrites the tables instead (VACUUM FULL), which gives the space back to the file system
 * but holds an ACCESS EXCLUSIVE lock on each table while it is rewritten: reads and writes of
 * that table wait, as etcd's defragmentation blocks its member. Only for a database past its quota.
 */
export async function vacuum(sql: Sql, opts: { full?: boolean } = {}): Promise<void> {
  await dbCall(async () => {
    const rows = (await sql`SELECT r.name FROM unnest(${sql.array(PGETCD_TABLES, 25)}::text[]) AS r(name) WHERE to_regclass(r.name) IS NOT NULL`) as unknown as Array<{ name: string }>;
    if (rows.length === 0) return;
    // Names come from PGETCD_TABLES (constants), quoted as identifiers.
    await sql.unsafe(`VACUUM (${opts.full ? 'FULL, ' : ''}ANALYZE) ${rows.map((r) => `"${r.name}"`).join(', ')}`);
  });
}
