import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { targetFromUrl, targetToUrl, type PgTarget } from '../../src/db/target.ts';
import { createSql } from '../../src/db/sql.ts';

/**
 * The test run's PostgreSQL: scripts/test.ts starts one embedded PostgreSQL per run and passes
 * it in PGETCD_TEST_DATABASE_URL (set it yourself to use another server). Each test server gets
 * a fresh database in it, so test files never see each other's keys.
 */
export function testDatabaseUrl(): string {
  const url = process.env.PGETCD_TEST_DATABASE_URL;
  if (!url) throw new Error('PGETCD_TEST_DATABASE_URL is not set: run the tests with `npm test`');
  return url;
}

/** Creates an empty database and returns its URL. */
export async function createTestDatabase(): Promise<string> {
  const base = targetFromUrl(testDatabaseUrl());
  const name = `pgetcd_t_${randomBytes(5).toString('hex')}`;
  const admin = createSql(base, { max: 1 });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return withDatabase(base, name);
}

function withDatabase(t: PgTarget, name: string): string {
  if (t.url) {
    const u = new URL(t.url);
    u.pathname = `/${name}`;
    return u.toString();
  }
  return targetToUrl({ ...t, database: name });
}

/** A direct SQL connection to a test database (for checks that look under the hood). */
export function sqlFor(url: string): postgres.Sql {
  const t = targetFromUrl(url);
  return (t.url ? postgres(t.url, { max: 2, onnotice: () => undefined }) : postgres({ host: t.host, port: t.port, user: t.user, database: t.database, max: 2, onnotice: () => undefined }));
}

/** True when the test runner owns the PostgreSQL server (so tests may restart it). */
export function ownsPostgres(): string | undefined {
  return process.env.PGETCD_TEST_PGDATA_DIR || undefined;
}
