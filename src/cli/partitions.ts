import { createSql } from '../db/sql.ts';
import { createLogger } from '../log.ts';
import { addPartition, listPartitions, removePartition, setPartitionOptions, TUNABLE, type MoveReport } from '../ops/partitions.ts';
import { openDatabase } from './database.ts';
import { COMMON_HELP, intFlag, parseCommand } from './options.ts';
import { bytes, CliError, print, table } from './output.ts';
import { progressBar } from './progress.ts';

const HELP = `Usage: pgetcd partitions list
       pgetcd partitions add <KIND|PREFIX> [--name TABLE] [--batch-rows N] [--pause-ms MS] [--lock-timeout-ms MS]
       pgetcd partitions remove <KIND|TABLE> [--batch-rows N] [--pause-ms MS] [--lock-timeout-ms MS]
       pgetcd partitions set <KIND|TABLE|default> SETTING=VALUE... [--reset SETTING]...

kv_log (the history) is partitioned by resource type ("kind", from the key: /registry/pods/...
is pods, /registry/example.com/widgets/... is example.com/widgets). Kinds without a partition
of their own share kv_log_default.

  list     each partition: its kind and key prefix, live keys, history rows, tombstones,
           table and index size, last vacuum and analyze, storage settings
  add      gives a kind its own partition and moves its rows there while writers keep
           writing (rows are copied in batches; writers wait only for a short final swap)
  remove   folds a kind's partition back into kv_log_default the same way
  set      storage settings of one partition: ${TUNABLE.join(', ')}

  --name TABLE           table name for the new partition (default kv_log_<kind>)
  --batch-rows N         rows per copy statement (default 10000)
  --pause-ms MS          pause between batches (default 0)
  --lock-timeout-ms MS   longest wait for kv_log's lock before the swap backs off (default 500)
  --reset SETTING        return a setting to PostgreSQL's default (repeatable)

Adding and removing need the database owner's role (DDL), like pgetcd migrate.

${COMMON_HELP}`;

export async function partitionsCommand(argv: string[]): Promise<number> {
  const p = parseCommand(argv, {
    'name': { type: 'string' }, 'batch-rows': { type: 'string' }, 'pause-ms': { type: 'string' },
    'lock-timeout-ms': { type: 'string' }, 'reset': { type: 'string', multiple: true },
  });
  if (p.help) { process.stdout.write(HELP); return 0; }
  const [action, arg, ...rest] = p.positionals;
  if (!['list', 'add', 'remove', 'set'].includes(action ?? '')) throw new CliError('say list, add, remove or set (see pgetcd partitions --help)', 2);
  if (action !== 'list' && !arg) throw new CliError(`partitions ${action} needs a kind`, 2);
  const log = createLogger(p.db.logLevel);
  const db = await openDatabase(p.db, log);
  try {
    if (action === 'list') {
      const parts = await listPartitions(db.sql);
      print(p.db.format, parts, () => table(parts.map((x) => ({
        table: x.table, kind: x.kind ?? '(default)', prefix: x.prefix ?? '-', live_keys: x.liveKeys, history: x.historyRows, tombstones: x.tombstones,
        table_size: bytes(x.tableBytes), index_size: bytes(x.indexBytes), last_vacuum: x.lastVacuum?.slice(0, 19) ?? '-',
        last_analyze: x.lastAnalyze?.slice(0, 19) ?? '-', settings: x.settings.join(','),
      })), ['table', 'kind', 'prefix', 'live_keys', 'history', 'tombstones', 'table_size', 'index_size', 'last_vacuum', 'last_analyze', 'settings']));
      return 0;
    }
    if (action === 'set') {
      const set: Record<string, string> = {};
      for (const kv of rest) {
        const m = /^([a-z_]+)=(.+)$/.exec(kv);
        if (!m) throw new CliError(`"${kv}" is not SETTING=VALUE`, 2);
        set[m[1]!] = m[2]!;
      }
      const reset = (p.values.reset as unknown as string[] | undefined) ?? [];
      if (!rest.length && !reset.length) throw new CliError('nothing to set', 2);
      const t = await setPartitionOptions(db.sql, arg!, set, reset);
      print(p.db.format, { table: t, set, reset }, () => `${t}: ${[...Object.entries(set).map(([k, v]) => `${k}=${v}`), ...reset.map((r) => `${r} reset`)].join(', ')}\n`);
      return 0;
    }
    // A session of its own: the change holds session-level advisory locks and runs its swap
    // as one explicit transaction.
    const one = createSql(db.target, { max: 1 });
    const bar = progressBar();
    const opts = {
      batchRows: intFlag(p.values['batch-rows'], 'batch-rows', 10_000),
      pauseMs: p.values['pause-ms'] === undefined ? 0 : intFlag(p.values['pause-ms'], 'pause-ms', 1),
      lockTimeoutMs: intFlag(p.values['lock-timeout-ms'], 'lock-timeout-ms', 500),
      ...(typeof p.values.name === 'string' ? { name: p.values.name } : {}),
      onProgress: (() => { let started = false; return (done: number, total: number) => { if (!started) { bar.start(total, 'copying rows'); started = true; } bar.update(done); }; })(),
    };
    let r: MoveReport;
    try {
      r = action === 'add' ? await addPartition(one, arg!, opts) : await removePartition(one, arg!, opts);
    } finally {
      bar.stop();
      await one.end({ timeout: 5 });
    }
    print(p.db.format, r, () => `${action === 'add' ? 'added' : 'removed'} partition ${r.table} for ${r.kind}: ${r.rowsMoved} rows of the kind moved, ${r.rowsCopied} rows copied in ${r.seconds.toFixed(1)} s; writers waited ${r.swapMs} ms for the swap${r.lockRetries ? ` (${r.lockRetries} lock retries)` : ''}\n`);
    return 0;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError((err as Error).message);
  } finally {
    await db.close();
  }
}
