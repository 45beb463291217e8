import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import type { Logger } from '../log.ts';
import { pgClientConfig, type PgTarget } from './target.ts';

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'migrations');

/** Advisory lock key for migrations: a blocking lock, so two instances starting together take turns. */
const MIGRATE_LOCK = 0x70676574_6364; // "pgetcd"

export async function migrate(target: PgTarget, log: Logger, direction: 'up' | 'down' = 'up', count?: number): Promise<string[]> {
  const client = new pg.Client(pgClientConfig(target));
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATE_LOCK]);
    const ran = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction,
      count: count ?? (direction === 'up' ? Infinity : 1),
      migrationsTable: 'pgmigrations',
      noLock: true,
      singleTransaction: true,
      checkOrder: true,
      log: () => undefined,
    });
    const names = ran.map((m) => m.name);
    if (names.length) log.info({ migrations: names, direction }, 'migrations applied');
    return names;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATE_LOCK]).catch(() => undefined);
    await client.end();
  }
}
