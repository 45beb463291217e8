import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Logger } from '../log.ts';
import { connectPrimary } from './session.ts';
import type { PgTarget } from './target.ts';

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'migrations');

/** Advisory lock key for migrations: a blocking lock, so two instances starting together take turns. */
const MIGRATE_LOCK = 0x70676574_6364; // "pgetcd"

export async function migrate(target: PgTarget, log: Logger, direction: 'up' | 'down' = 'up', count?: number): Promise<string[]> {
  const client = await connectPrimary(target, { applicationName: 'pgetcd migrate', onError: (err) => log.warn({ err }, 'migration session failed') });
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

export interface MigrationState {
  name: string;
  /** When it ran, or undefined if pending. */
  runOn: Date | undefined;
  /** Recorded in the database but unknown to this pgetcd (the schema is newer than the code). */
  unknown: boolean;
}

/** The migration files this pgetcd ships, in order. */
export async function migrationNames(): Promise<string[]> {
  const fs = await import('node:fs/promises');
  return (await fs.readdir(MIGRATIONS_DIR)).filter((f) => /^\d+_.+\.(sql|js|ts)$/.test(f)).map((f) => f.replace(/\.(sql|js|ts)$/, '')).sort();
}

/** Each migration, applied or pending, plus those the database has that the code does not. */
export async function migrationStatus(target: PgTarget): Promise<MigrationState[]> {
  const client = await connectPrimary(target, { applicationName: 'pgetcd migrate', onError: () => undefined });
  try {
    const exists = await client.query<{ t: string | null }>("SELECT to_regclass('pgmigrations')::text AS t");
    const applied = new Map<string, Date>();
    if (exists.rows[0]?.t) {
      for (const r of (await client.query<{ name: string; run_on: Date }>('SELECT name, run_on FROM pgmigrations ORDER BY id')).rows) applied.set(r.name, r.run_on);
    }
    const known = await migrationNames();
    const out: MigrationState[] = known.map((name) => ({ name, runOn: applied.get(name), unknown: false }));
    for (const [name, runOn] of applied) if (!known.includes(name)) out.push({ name, runOn, unknown: true });
    return out;
  } finally {
    await client.end();
  }
}

/**
 * Refuses to serve a database this pgetcd cannot run on: one whose schema is newer than the
 * code (a migration it does not know), one that is not pgetcd's (tables but no pgetcd
 * migrations), or — when migrations are not run on start — one with migrations pending.
 * Throws an Error with one line for the operator.
 */
export async function checkSchema(target: PgTarget, pendingAllowed: boolean): Promise<void> {
  const client = await connectPrimary(target, { applicationName: 'pgetcd migrate', onError: () => undefined });
  try {
    const r = await client.query<{ migrations: string | null; meta: string | null; tables: number }>(
      `SELECT to_regclass('pgmigrations')::text AS migrations, to_regclass('meta')::text AS meta,
              (SELECT count(*)::int FROM pg_tables WHERE schemaname = current_schema()) AS tables`);
    const s = r.rows[0]!;
    if (!s.migrations) {
      if (s.tables > 0) throw new Error(`the database is not pgetcd's: it has ${s.tables} tables and no pgmigrations table; use an empty database`);
      if (!pendingAllowed) throw new Error('the database has no pgetcd schema: run `pgetcd migrate up` first (or start without --no-migrate)');
      return;
    }
    const applied = (await client.query<{ name: string }>('SELECT name FROM pgmigrations ORDER BY id')).rows.map((x) => x.name);
    const known = await migrationNames();
    const unknown = applied.filter((n) => !known.includes(n));
    if (unknown.length) throw new Error(`the database schema is newer than this pgetcd (unknown migration ${unknown[unknown.length - 1]}): upgrade pgetcd or run \`pgetcd migrate down\` with the newer version`);
    if (applied.length && !s.meta) throw new Error('the database is not pgetcd\'s: pgmigrations exists but pgetcd\'s meta table does not');
    const pending = known.filter((n) => !applied.includes(n));
    if (pending.length && !pendingAllowed) throw new Error(`the database schema is older than this pgetcd (${pending.length} migrations pending, first ${pending[0]}): run \`pgetcd migrate up\``);
  } finally {
    await client.end();
  }
}
