/**
 * The database password never leaves pgetcd: not in its logs (debug level, through a start, a
 * database connection loss and a shutdown), not in /metrics, /health, /livez, /readyz or
 * /version, not in the errors clients get, not in start errors, not in --help. Each password
 * source (URL, PGPASSWORD, PGPASSFILE, --datastore-password-file) gets its own marker so a leak
 * names its source.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { createTestDatabase, sqlFor } from './helpers/db.ts';
import { rawClients } from './helpers/raw.ts';
import { freePort, startServerProcess } from './helpers/server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin', 'pgetcd.js');
// Marker passwords; characters a URL must escape included.
const URL_PW = 'url-Secret-7f3a:@x';
const ENV_PW = 'env-Secret-91bd';
const PASSFILE_PW = 'passfile-Secret-c04e';
const FILE_PW = 'file-Secret-5e2d';
// Checked by their distinctive middle part, so a partly escaped or cut password counts too.
const ALL = ['Secret-7f3a', 'Secret-91bd', 'Secret-c04e', 'Secret-5e2d'];

function assertNoSecret(where: string, text: string): void {
  for (const pw of ALL) assert.ok(!text.includes(pw), `${where} shows the password ${pw}:\n${text}`);
}

function withPassword(url: string, pw: string): string {
  const u = new URL(url);
  u.password = encodeURIComponent(pw);
  return u.toString();
}

/** Runs pgetcd to its exit; stdout and stderr together. */
function runToExit(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, '--listen-metrics-urls', '', '--log-level', 'debug', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

describe('the database password appears in no output', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-secrets-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('logs, /metrics, /health, /livez, /readyz, /version and client errors, through a connection loss and a shutdown', async () => {
    const url = await createTestDatabase();
    const port = await freePort();
    const metricsPort = await freePort();
    const s = await startServerProcess(withPassword(url, URL_PW), port, ['--log-level', 'debug', '--listen-metrics-urls', `http://127.0.0.1:${metricsPort}`]);
    const raw = rawClients(s.endpoint);
    const seen: string[] = [];
    try {
      await raw.call('KV', 'Put', { key: Buffer.from('a'), value: Buffer.from('1') });
      // Errors clients get: etcd's, and whatever a lost database connection produces.
      const errors: string[] = [];
      const collect = (p: Promise<unknown>): Promise<void> => p.then(() => undefined, (err: grpc.ServiceError) => { errors.push(`${err.code} ${err.details}`); });
      await collect(raw.call('KV', 'Range', { key: Buffer.from('a'), revision: 1_000_000 }));
      await collect(raw.call('KV', 'Compact', { revision: 1_000_000 }));
      const admin = sqlFor(url);
      try {
        for (let i = 0; i < 5; i++) {
          await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()`;
          await collect(raw.call('KV', 'Put', { key: Buffer.from(`k${i}`), value: Buffer.from('v') }));
          await collect(raw.call('KV', 'Range', { key: Buffer.from('a') }));
        }
      } finally {
        await admin.end();
      }
      assert.ok(errors.length >= 2, errors.join('\n'));
      seen.push(...errors);
      // Once the connections are back, every HTTP endpoint, on the metrics port and the client port.
      for (let i = 0; ; i++) {
        try {
          await raw.call('KV', 'Put', { key: Buffer.from('after'), value: Buffer.from('v') });
          break;
        } catch (err) {
          if (i > 200) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      for (const p of [metricsPort, port]) {
        for (const route of ['/metrics', '/health', '/livez', '/readyz', '/version', '/readyz?verbose', '/livez?verbose']) {
          const r = await fetch(`http://127.0.0.1:${p}${route}`);
          seen.push(`${p}${route} ${r.status} ${await r.text()}`);
        }
      }
    } finally {
      raw.close();
      await s.stop();
    }
    const out = s.output();
    assert.match(out, /"msg":"stopped"/);
    assert.ok(seen.some((t) => t.includes('etcd_server_has_leader')), 'the metrics were read');
    assertNoSecret('the log', out);
    assertNoSecret('the HTTP endpoints and client errors', seen.join('\n'));
  });

  it('start failures with the password from each source are one line without it', async () => {
    const url = await createTestDatabase();
    const pwFile = path.join(dir, 'password');
    fs.writeFileSync(pwFile, `${FILE_PW}\n`);
    const passFile = path.join(dir, 'pgpass');
    fs.writeFileSync(passFile, `*:*:*:*:${PASSFILE_PW}\n`, { mode: 0o600 });
    const closed = `127.0.0.1:${await freePort()}`;
    const listen = ['--listen-client-urls', `http://127.0.0.1:${await freePort()}`, '--datastore-wait-timeout', '0'];
    const cases: Array<{ what: string; args: string[]; env?: NodeJS.ProcessEnv }> = [
      { what: 'unreachable, password in the URL', args: ['--endpoint', `postgres://u:${encodeURIComponent(URL_PW)}@${closed}/db`] },
      { what: 'bad port, password in the URL', args: ['--endpoint', `postgres://u:${encodeURIComponent(URL_PW)}@127.0.0.1:99999/db`] },
      { what: 'not a URL, password in it', args: ['--endpoint', `postgres//u:${URL_PW}@host/db`] },
      { what: 'no such database, password in the URL', args: ['--endpoint', withPassword(url.replace(/\/pgetcd_t_[0-9a-f]+/, '/no_such_db'), URL_PW)] },
      { what: 'unreachable, PGPASSWORD', args: ['--endpoint', `postgres://u@${closed}/db`], env: { ...process.env, PGPASSWORD: ENV_PW } },
      { what: 'unreachable, PGPASSFILE', args: ['--endpoint', `postgres://u@${closed}/db`], env: { ...process.env, PGPASSFILE: passFile } },
      { what: 'unreachable, --datastore-password-file', args: ['--endpoint', `postgres://u@${closed}/db`, '--datastore-password-file', pwFile] },
      { what: 'endpoint in the environment, unreachable', args: [], env: { ...process.env, PGETCD_ENDPOINT: `postgres://u:${encodeURIComponent(URL_PW)}@${closed}/db` } },
    ];
    for (const c of cases) {
      const r = await runToExit([...c.args, ...listen], c.env);
      assert.notEqual(r.code, 0, `${c.what}: ${r.out}`);
      assert.ok(r.out.trim().length > 0, `${c.what}: says why`);
      assertNoSecret(c.what, r.out);
    }
  });

  it('--help with a password in every source', () => {
    const r = spawnSync(process.execPath, [BIN, '--help'], {
      encoding: 'utf8',
      env: { ...process.env, PGETCD_ENDPOINT: `postgres://u:${encodeURIComponent(URL_PW)}@h/db`, DATABASE_URL: `postgres://u:${encodeURIComponent(URL_PW)}@h/db`, PGPASSWORD: ENV_PW },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /--endpoint/);
    assertNoSecret('--help', r.stdout + r.stderr);
  });
});
