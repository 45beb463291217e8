import { createLogger } from '../log.ts';
import { checkConsistency, formatViolations } from '../store/check.ts';
import { openDatabase } from './database.ts';
import { COMMON_HELP, intFlag, parseCommand } from './options.ts';
import { print } from './output.ts';

const HELP = `Usage: pgetcd check [--sample N]

Checks that kv_log, kv_current, leases and meta agree (gapless revisions, each key's versions
chained, kv_current equal to the latest live row of every key, ...) in one read-only snapshot:
run it after a restore or a manual change. Exit 0 when consistent, 1 with the violations.

  --sample N    offending rows shown per check (default 10)

${COMMON_HELP}`;

export async function checkCommand(argv: string[]): Promise<number> {
  const p = parseCommand(argv, { sample: { type: 'string' } });
  if (p.help) { process.stdout.write(HELP); return 0; }
  const log = createLogger(p.db.logLevel);
  const db = await openDatabase(p.db, log);
  try {
    const vs = await checkConsistency(db.sql, { sample: intFlag(p.values.sample, 'sample', 10) });
    print(p.db.format, { consistent: vs.length === 0, violations: vs }, () => (vs.length === 0 ? 'consistent\n' : `${formatViolations(vs)}\n`));
    return vs.length === 0 ? 0 : 1;
  } finally {
    await db.close();
  }
}
