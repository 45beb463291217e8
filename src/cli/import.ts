import { createSql } from '../db/sql.ts';
import { targetFromUrl } from '../db/target.ts';
import { createLogger } from '../log.ts';
import { importFromEtcd, importFromKine, type ImportReport } from '../ops/import.ts';
import { openDatabase, openStore } from './database.ts';
import { COMMON_HELP, intFlag, parseCommand } from './options.ts';
import { CliError, print } from './output.ts';
import { progressBar } from './progress.ts';

const HELP = `Usage: pgetcd import --from-kine <postgres-url> [--force]
       pgetcd import --from-etcd <host:port> [--force] [--page N]

Copies every live key into an empty pgetcd database (the one --endpoint / --data-dir names),
each key a new revision in the source's order, then reads them back and compares a hash.

  --from-kine URL     a kine database on PostgreSQL (its kine table); kine's TTL "leases"
                      become pgetcd leases with that TTL, counted from the import
  --from-etcd ADDR    a live etcd (gRPC, no TLS): its keys at one revision, read in pages,
                      and its leases with the TTL each has left (same lease IDs)
  --force             import into a database that already has keys (they stay)
  --page N            keys per etcd Range page (default 1000)
  --inflight N        puts in flight at once (default 256)

${COMMON_HELP}`;

export async function importCommand(argv: string[]): Promise<number> {
  const p = parseCommand(argv, {
    'from-kine': { type: 'string' }, 'from-etcd': { type: 'string' }, 'force': { type: 'boolean' },
    'page': { type: 'string' }, 'inflight': { type: 'string' },
  });
  if (p.help) { process.stdout.write(HELP); return 0; }
  const kineUrl = p.values['from-kine'] as string | undefined;
  const etcd = p.values['from-etcd'] as string | undefined;
  if ((kineUrl === undefined) === (etcd === undefined)) throw new CliError('give exactly one of --from-kine URL or --from-etcd ADDR', 2);
  const log = createLogger(p.db.logLevel);
  const db = await openDatabase(p.db, log);
  const store = await openStore(db, log);
  const bar = progressBar();
  let started = false;
  const opts = {
    force: p.values.force === true,
    inflight: intFlag(p.values.inflight, 'inflight', 256),
    onProgress: (done: number, total: number) => { if (!started) { bar.start(total, 'importing keys'); started = true; } bar.update(done); },
  };
  let r: ImportReport;
  try {
    if (kineUrl !== undefined) {
      const kine = createSql(targetFromUrl(kineUrl), { max: 2 });
      try {
        r = await importFromKine(kine, db.sql, store, opts);
      } finally {
        await kine.end({ timeout: 5 });
      }
    } else {
      r = await importFromEtcd(etcd!, db.sql, store, { ...opts, page: intFlag(p.values.page, 'page', 1000) });
    }
  } catch (err) {
    throw new CliError((err as Error).message.split('\n')[0]!);
  } finally {
    bar.stop();
    await store.close();
    await db.close();
  }
  print(p.db.format, r, () => `imported ${r.keys} keys and ${r.leases} leases from ${r.source} (source revision ${r.sourceRevision}) as revisions ${r.firstRevision}..${r.lastRevision} in ${r.seconds.toFixed(1)} s (${r.keysPerSecond.toFixed(0)} keys/s); hash ${r.targetHash.slice(0, 16)} matches the source\n`);
  return 0;
}
