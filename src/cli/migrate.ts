import { checkSchema, migrate, migrationStatus } from '../db/migrate.ts';
import { createLogger } from '../log.ts';
import { openDatabase } from './database.ts';
import { COMMON_HELP, parseCommand } from './options.ts';
import { CliError, print, table } from './output.ts';

const HELP = `Usage: pgetcd migrate up [N] | down [N] | status

  up [N]      apply pending migrations (all, or the next N)
  down [N]    roll back the last N applied migrations (default 1; "all" for every one).
              Destructive downs: 1700000000000_kv-schema drops every table and its data;
              1700000000600_partition-map drops the partition map (the partitions stay).
  status      every migration, applied or pending, and any the database has that this
              pgetcd does not know (a schema newer than the code)

Run migrations as the database owner; the server can then run with --no-migrate as a role
that has only SELECT/INSERT/UPDATE/DELETE (see docs/operations.md, "Roles and grants").

${COMMON_HELP}`;

export async function migrateCommand(argv: string[]): Promise<number> {
  const p = parseCommand(argv, {});
  if (p.help) { process.stdout.write(HELP); return 0; }
  const [action, n] = p.positionals;
  if (action !== 'up' && action !== 'down' && action !== 'status') throw new CliError('say up, down or status (see pgetcd migrate --help)', 2);
  let count: number | undefined;
  if (n !== undefined) {
    count = n === 'all' ? Infinity : Number(n);
    if (!(count === Infinity || (Number.isInteger(count) && count > 0))) throw new CliError('N must be a positive integer or "all"', 2);
  }
  const log = createLogger(p.db.logLevel);
  const db = await openDatabase(p.db, log);
  try {
    if (action === 'status') {
      const st = await migrationStatus(db.target);
      const rows = st.map((m) => ({ name: m.name, state: m.unknown ? 'unknown (newer than this pgetcd)' : m.runOn ? 'applied' : 'pending', run_on: m.runOn?.toISOString() }));
      print(p.db.format, rows, () => table(rows, ['name', 'state', 'run_on']));
      return st.some((m) => m.unknown) ? 1 : 0;
    }
    if (action === 'up') await checkSchema(db.target, true);
    const ran = await migrate(db.target, log, action, count);
    print(p.db.format, { direction: action, migrations: ran }, () =>
      ran.length ? ran.map((r) => `${action === 'up' ? 'applied' : 'rolled back'} ${r}\n`).join('') : 'nothing to do\n');
    return 0;
  } finally {
    await db.close();
  }
}
