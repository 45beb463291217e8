import assert from 'node:assert/strict';
import { checkConsistency, formatViolations } from '../../src/store/check.ts';
import { createSql } from '../../src/db/sql.ts';
import { targetFromUrl } from '../../src/db/target.ts';

/**
 * Runs the store's consistency checker (src/store/check.ts) on a test database and fails with
 * every violation it finds. Call it after every multi-instance and fault test.
 */
export async function assertConsistent(databaseUrl: string): Promise<void> {
  const sql = createSql(targetFromUrl(databaseUrl), { max: 1 });
  try {
    const vs = await checkConsistency(sql);
    assert.equal(vs.length, 0, `the store is inconsistent:\n${formatViolations(vs)}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
