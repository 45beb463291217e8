import { createLogger } from '../log.ts';
import { StoreError } from '../store/errors.ts';
import { openDatabase, openStore } from './database.ts';
import { COMMON_HELP, intFlag, parseCommand } from './options.ts';
import { CliError, print } from './output.ts';

const HELP = `Usage: pgetcd compact <REVISION> | --keep N  [--physical]

Compacts the key space at REVISION as etcd's Compact does: reads below it fail with
"mvcc: required revision has been compacted", each key keeps its latest version at or below it.

  --keep N      compact at (current revision - N) instead of a given revision
  --physical    wait until the superseded history is deleted from kv_log

${COMMON_HELP}`;

export async function compactCommand(argv: string[]): Promise<number> {
  const p = parseCommand(argv, { keep: { type: 'string' }, physical: { type: 'boolean' } });
  if (p.help) { process.stdout.write(HELP); return 0; }
  const keep = p.values.keep === undefined ? undefined : intFlag(p.values.keep, 'keep', 1);
  const given = p.positionals[0];
  if ((given === undefined) === (keep === undefined)) throw new CliError('give a REVISION or --keep N (see pgetcd compact --help)', 2);
  const log = createLogger(p.db.logLevel);
  const db = await openDatabase(p.db, log);
  const store = await openStore(db, log);
  try {
    const { revision: current } = await store.currentRevision();
    const target = keep !== undefined ? current - keep : Number(given);
    if (!Number.isInteger(target) || target < 0) throw new CliError(`nothing to compact: revision ${target} (current ${current})`, 2);
    const started = Date.now();
    try {
      await store.compact(target, p.values.physical === true);
    } catch (err) {
      if (err instanceof StoreError && err.code === 'Compacted') throw new CliError(`revision ${target} is already compacted`);
      if (err instanceof StoreError && err.code === 'FutureRev') throw new CliError(`revision ${target} is in the future (current ${current})`);
      if (err instanceof StoreError) throw new CliError(err.message);
      throw err;
    }
    const out = { compactRevision: target, currentRevision: current, physical: p.values.physical === true, seconds: (Date.now() - started) / 1000 };
    print(p.db.format, out, () => `compacted at revision ${target} (current ${current})${out.physical ? `, history removed in ${out.seconds.toFixed(1)} s` : ''}\n`);
    return 0;
  } finally {
    await store.close();
    await db.close();
  }
}
