/**
 * `npm test`: starts one embedded PostgreSQL for the whole run (unless PGETCD_TEST_DATABASE_URL
 * names a server), runs every test file with node's test runner, and stops PostgreSQL.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedPostgres } from '../src/db/embedded.ts';
import { targetToUrl } from '../src/db/target.ts';
import { createLogger } from '../src/log.ts';

/**
 * Test files under `dir`. `test/slow/` (suites that take minutes: failover, large logs, real
 * Prometheus) is left out of the default run and run by `npm run test:slow` (and .ci/run).
 */
async function findTests(dir: string, slow: boolean): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (!slow && p === path.join('test', 'slow')) continue;
      out.push(...(await findTests(p, slow)));
    } else if (e.name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

async function main(): Promise<number> {
  const log = createLogger(process.env.PGETCD_TEST_LOG_LEVEL ?? 'warn');
  const argv = process.argv.slice(2);
  const slow = argv.includes('--slow');
  const args = argv.filter((a) => a !== '--slow');
  const files = args.length > 0 ? args : await findTests(slow ? path.join('test', 'slow') : 'test', slow);
  if (files.length === 0) {
    console.log('no test files');
    return 0;
  }
  const env: NodeJS.ProcessEnv = { ...process.env };
  let pg: EmbeddedPostgres | undefined;
  let tmp: string | undefined;
  if (!env.PGETCD_TEST_DATABASE_URL) {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgetcd-test-'));
    await fs.chmod(tmp, 0o755);
    pg = new EmbeddedPostgres({ dataDir: path.join(tmp, 'db'), port: 5432, tcp: false, log });
    const target = await pg.start();
    env.PGETCD_TEST_DATABASE_URL = targetToUrl(target);
    env.PGETCD_TEST_PGDATA_DIR = path.join(tmp, 'db');
  }
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-force-exit', '--test-concurrency=2', `--test-timeout=${slow ? 1_800_000 : 300_000}`, ...files], { stdio: 'inherit', env });
    child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0)));
    // Interrupted: stop the tests, then fall through to stopping PostgreSQL.
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => child.kill(sig));
  });
  await pg?.stop();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  return code;
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
