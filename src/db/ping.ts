import type { Sql } from './sql.ts';

/** Resolves once PostgreSQL answers a trivial query; rejects on error or after `timeoutMs`. */
export async function ping(sql: Sql, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  const q = sql`SELECT 1`;
  q.catch(() => undefined);
  try {
    await Promise.race([q, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
