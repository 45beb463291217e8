import fs from 'node:fs';
import { once } from 'node:events';
import { createLogger } from '../log.ts';
import { openDatabase } from './database.ts';
import { COMMON_HELP, parseCommand } from './options.ts';
import { CliError } from './output.ts';

const HELP = `Usage: pgetcd export [--file PATH]

Writes the live key space at one revision as JSON lines (to stdout, or --file): first
{"revision":R,"compact_revision":C,"keys":N,"leases":L}, then one {"lease":ID,"ttl":S,"remaining":S}
per lease, then one {"key":…,"value":…,"create_revision":…,"mod_revision":…,"version":…,"lease":…}
per key in key order, key and value in base64. For backups use PostgreSQL's tools
(docs/operations.md); this is for inspection and moving keys elsewhere.

  --file PATH    write there instead of stdout

${COMMON_HELP}`;

export async function exportCommand(argv: string[]): Promise<number> {
  const p = parseCommand(argv, { file: { type: 'string' } });
  if (p.help) { process.stdout.write(HELP); return 0; }
  const file = p.values.file as string | undefined;
  const out = file ? fs.createWriteStream(file) : process.stdout;
  const write = async (line: string): Promise<void> => {
    if (!out.write(`${line}\n`)) await once(out, 'drain');
  };
  const log = createLogger(p.db.logLevel);
  const db = await openDatabase(p.db, log);
  try {
    await db.sql.begin('ISOLATION LEVEL REPEATABLE READ READ ONLY', async (tx) => {
      const [m] = (await tx`SELECT revision, compact_revision, (SELECT count(*)::int8 FROM kv_current) AS keys, (SELECT count(*)::int8 FROM leases) AS leases FROM meta`) as unknown as Array<{ revision: number; compact_revision: number; keys: number; leases: number }>;
      await write(JSON.stringify(m));
      const leases = (await tx`SELECT id::text AS id, ttl, greatest(0, ceil(extract(epoch FROM expires_at - now())))::int8 AS remaining FROM leases ORDER BY id`) as unknown as Array<{ id: string; ttl: number; remaining: number }>;
      for (const l of leases) await write(JSON.stringify({ lease: l.id, ttl: l.ttl, remaining: l.remaining }));
      const cursor = tx`SELECT key, value, create_revision, mod_revision, version, lease::text AS lease FROM kv_current ORDER BY key`.cursor(1000);
      for await (const rows of cursor as AsyncIterable<Array<{ key: Buffer; value: Buffer; create_revision: number; mod_revision: number; version: number; lease: string }>>) {
        for (const r of rows) {
          await write(JSON.stringify({ key: r.key.toString('base64'), value: r.value.toString('base64'), create_revision: r.create_revision, mod_revision: r.mod_revision, version: r.version, lease: r.lease }));
        }
      }
    });
  } catch (err) {
    throw new CliError((err as Error).message.split('\n')[0]!);
  } finally {
    await db.close();
    if (file) { out.end(); await once(out, 'finish'); }
  }
  return 0;
}
