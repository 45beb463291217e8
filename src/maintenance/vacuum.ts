import type { Sql } from '../db/sql.ts';
import { dbCall } from '../store/pgerrors.ts';
import { PGETCD_TABLES } from './dbsize.ts';

/**
 * etcd's Defragment returns free pages to the file system; the PostgreSQL counterpart that is
 * safe online is a plain VACUUM of pgetcd's tables (partitions included): dead rows become
 * reusable space and statistics stay fresh. It never takes the exclusive lock VACUUM FULL needs.
 */
export async function vacuum(sql: Sql): Promise<void> {
  await dbCall(async () => {
    const rows = (await sql`SELECT r.name FROM unnest(${sql.array(PGETCD_TABLES, 25)}::text[]) AS r(name) WHERE to_regclass(r.name) IS NOT NULL`) as unknown as Array<{ name: string }>;
    if (rows.length === 0) return;
    // Names come from PGETCD_TABLES (constants), quoted as identifiers.
    await sql.unsafe(`VACUUM (ANALYZE) ${rows.map((r) => `"${r.name}"`).join(', ')}`);
  });
}
