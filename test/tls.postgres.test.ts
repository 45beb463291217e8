import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hasOpenssl, issue, makeCa, type Ca, type Issued } from './helpers/certs.ts';
import { rawClients } from './helpers/raw.ts';
import { freePort, startServer, startServerProcess } from './helpers/server.ts';
import { debianPgBin, startTlsPostgres, type TlsPostgres } from './helpers/tlspg.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = debianPgBin();
const skip = !BIN ? "Debian's postgresql is not installed" : !hasOpenssl() ? 'openssl is not installed' : false;

async function putGet(endpoint: string, key: string): Promise<void> {
  const raw = rawClients(endpoint);
  try {
    await raw.call('KV', 'Put', { key: Buffer.from(key), value: Buffer.from('v') });
    const r = await raw.call<{ kvs: Array<{ value: Buffer }> }>('KV', 'Range', { key: Buffer.from(key) });
    assert.equal(r.kvs[0]?.value.toString(), 'v');
  } finally {
    raw.close();
  }
}

/** Runs the pgetcd binary to its exit; stdout and stderr together. */
function runToExit(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'pgetcd.js'), '--listen-metrics-urls', '', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

describe('TLS to PostgreSQL (a real PostgreSQL that requires TLS and a client certificate)', { skip }, () => {
  let dir: string;
  let ca: Ca;
  let otherCa: Ca;
  let client: Issued;
  let pg: TlsPostgres;
  let pwFile: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-tlspg-certs-'));
    ca = makeCa(path.join(dir, 'ca'), 'ca');
    otherCa = makeCa(path.join(dir, 'other'), 'other-ca');
    // The server's certificate names localhost only, so verify-full to 127.0.0.1 must fail.
    const server = issue(ca, 'pg-server', 'localhost', ['DNS:localhost']);
    client = issue(ca, 'pg-client', 'postgres', []);
    pg = startTlsPostgres(BIN!, ca, server, await freePort());
    pwFile = path.join(dir, 'password');
    fs.writeFileSync(pwFile, pg.password + '\n');
  });

  after(() => {
    pg?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("verify-full with k3s's --datastore-cafile/--datastore-certfile/--datastore-keyfile and --datastore-password-file; the password is in no output", async () => {
    const port = await freePort();
    const p = await startServerProcess(`postgres://postgres@localhost:${pg.port}/postgres`, port, [
      '--datastore-cafile', ca.cert, '--datastore-certfile', client.cert, '--datastore-keyfile', client.key,
      '--datastore-password-file', pwFile, '--log-level', 'debug',
    ]);
    let out = '';
    p.child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    p.child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      await putGet(p.endpoint, 'tls-k3s-flags');
    } finally {
      await p.stop();
    }
    assert.ok(out.includes('"msg":"stopped"'), out);
    assert.ok(!out.includes(pg.password), 'password not logged');
  });

  it("libpq's URL parameters: sslmode=verify-full with sslrootcert/sslcert/sslkey and the password in the URL", async () => {
    const url = `postgres://postgres:${encodeURIComponent(pg.password)}@localhost:${pg.port}/postgres?sslmode=verify-full&sslrootcert=${ca.cert}&sslcert=${client.cert}&sslkey=${client.key}`;
    const s = await startServer({ databaseUrl: url });
    try {
      await putGet(s.endpoint, 'tls-url-params');
    } finally {
      await s.stop();
    }
  });

  it('verify-full checks the host name (127.0.0.1 is not in the certificate) and verify-ca does not', async () => {
    const base = `postgres://postgres@127.0.0.1:${pg.port}/postgres?sslrootcert=${ca.cert}&sslcert=${client.cert}&sslkey=${client.key}`;
    const full = await runToExit(['--endpoint', `${base}&sslmode=verify-full`, '--datastore-password-file', pwFile, '--listen-client-urls', `http://127.0.0.1:${await freePort()}`]);
    assert.equal(full.code, 2, full.out + full.err);
    assert.match(full.err, /^pgetcd: --endpoint: TLS to PostgreSQL at postgres:\/\/127\.0\.0\.1:\d+\/postgres failed: .*ERR_TLS_CERT_ALTNAME_INVALID.*\n$/);
    const s = await startServer({ databaseUrl: `${base}&sslmode=verify-ca`, datastorePasswordFile: pwFile });
    try {
      await putGet(s.endpoint, 'tls-verify-ca');
    } finally {
      await s.stop();
    }
  });

  it('a CA that did not sign the server certificate fails the start with one clear line, exit 2', async () => {
    const r = await runToExit(['--endpoint', `postgres://postgres@localhost:${pg.port}/postgres`, '--datastore-cafile', otherCa.cert,
      '--datastore-certfile', client.cert, '--datastore-keyfile', client.key, '--datastore-password-file', pwFile,
      '--listen-client-urls', `http://127.0.0.1:${await freePort()}`]);
    assert.equal(r.code, 2, r.out + r.err);
    assert.equal(r.err.split('\n').length, 2, r.err);
    assert.match(r.err, /^pgetcd: --endpoint: TLS to PostgreSQL at postgres:\/\/localhost:\d+\/postgres failed: .*(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
    assert.ok(!(r.out + r.err).includes(pg.password));
  });

  it('a wrong password is one clear line that does not echo any password', async () => {
    const wrong = 'not-the-password-123';
    const r = await runToExit(['--endpoint', `postgres://postgres:${wrong}@localhost:${pg.port}/postgres`, '--datastore-cafile', ca.cert,
      '--datastore-certfile', client.cert, '--datastore-keyfile', client.key, '--log-level', 'debug',
      '--listen-client-urls', `http://127.0.0.1:${await freePort()}`]);
    assert.equal(r.code, 2, r.out + r.err);
    assert.match(r.err, /^pgetcd: --endpoint: PostgreSQL at .* refused the login: password authentication failed/);
    assert.ok(!(r.out + r.err).includes(wrong));
    assert.ok(!(r.out + r.err).includes(pg.password));
  });

  it('--help shows no password even when one is in the environment', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'pgetcd.js'), '--help'], {
      encoding: 'utf8', env: { ...process.env, PGETCD_ENDPOINT: `postgres://postgres:${pg.password}@localhost/x`, PGPASSWORD: pg.password },
    });
    assert.equal(r.status, 0);
    assert.ok(!r.stdout.includes(pg.password) && !r.stderr.includes(pg.password));
  });
});
