import { EmbeddedPostgres } from '../db/embedded.ts';
import { createSql, type Sql } from '../db/sql.ts';
import { resolveEndpoint } from '../db/endpoint.ts';
import type { PgTarget } from '../db/target.ts';
import type { Logger } from '../log.ts';
import type { DbFlags } from './options.ts';

export interface Database {
  target: PgTarget;
  sql: Sql;
  close(): Promise<void>;
}

/**
 * Connects an operator command to pgetcd's database: the external one, or the embedded one in
 * --data-dir (started for the command and stopped after it, unless a running server owns it).
 */
export async function openDatabase(flags: DbFlags, log: Logger): Promise<Database> {
  let embedded: EmbeddedPostgres | undefined;
  let target: PgTarget;
  if (flags.endpoint) {
    target = resolveEndpoint(flags.endpoint, flags.datastore);
  } else {
    embedded = new EmbeddedPostgres({ dataDir: flags.dataDir, port: flags.embeddedPort, tcp: false, log: log.child({ mod: 'embedded-pg' }) });
    target = await embedded.start();
  }
  const sql = createSql(target, { max: 4 });
  return {
    target,
    sql,
    close: async () => {
      await sql.end({ timeout: 5 });
      if (embedded && !embedded.adopted) await embedded.stop();
    },
  };
}

/**
 * A Store over the command's database, so the command's writes (compaction bookkeeping) take
 * the one writer path every server write takes. No key index: it reads before each batch.
 */
export async function openStore(db: Database, log: Logger): Promise<import('../store/store.ts').Store> {
  const { Store } = await import('../store/store.ts');
  const { DEFAULTS } = await import('../config.ts');
  return new Store(db.sql, {
    log: log.child({ mod: 'store' }),
    maxTxnOps: DEFAULTS.maxTxnOps,
    maxRequestBytes: DEFAULTS.maxRequestBytes,
    maxBatch: DEFAULTS.maxBatch,
    maxBatchBytes: DEFAULTS.maxBatchBytes,
    keyIndex: false,
    connect: (onclose) => createSql(db.target, { max: 1, onclose, maxLifetime: 0 }),
  });
}
