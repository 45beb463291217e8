import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, DEFAULTS, loadConfig, parseConfig, SETTINGS, USAGE, type Config } from '../src/config.ts';
import { withFlagsTable } from '../src/config/docs.ts';
import { envNames } from '../src/config/load.ts';
import { resolveReadEndpoints } from '../src/db/endpoint.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function cfg(argv: string[], env: NodeJS.ProcessEnv = {}): Config {
  const c = parseConfig(argv, env);
  assert.notEqual(c, 'help');
  return c as Config;
}

function tmpFile(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-config-'));
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

function failure(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig(argv, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `ConfigError expected, got ${String(err)}`);
    assert.ok(!err.message.includes('\n'), 'one line');
    return err.message;
  }
  assert.fail(`no error for ${argv.join(' ')}`);
}

describe('configuration', () => {
  it('defaults with no flags, no environment and no file; advertise URLs default to the listen URLs', () => {
    const c = cfg([]);
    assert.deepEqual(c, { ...DEFAULTS, advertiseClientUrls: DEFAULTS.listenClientUrls });
  });

  it('precedence: flag over PGETCD_ over ETCD_ over config file over default, per setting', () => {
    const file = tmpFile('c.yml', 'name: from-file\nmax-txn-ops: 7\nmax-batch: 9\nlog-level: debug\nmax-request-bytes: 1000\n');
    const env = { PGETCD_CONFIG_FILE: file, PGETCD_NAME: 'from-pgetcd-env', ETCD_NAME: 'from-etcd-env', ETCD_MAX_TXN_OPS: '8', PGETCD_MAX_BATCH: '10' };
    const c = cfg(['--name', 'from-flag'], env);
    assert.equal(c.name, 'from-flag');
    assert.equal(c.maxTxnOps, 8, 'ETCD_ env beats the file');
    assert.equal(c.maxBatch, 10, 'PGETCD_ env beats the file');
    assert.equal(c.logLevel, 'debug', 'file beats the default');
    assert.equal(c.maxRequestBytes, 1000);
    assert.equal(c.maxBatchBytes, DEFAULTS.maxBatchBytes);
    assert.equal(cfg([], env).name, 'from-pgetcd-env', 'PGETCD_ beats ETCD_');
    assert.equal(cfg(['--max-batch=11'], env).maxBatch, 11);
  });

  it("reads etcd's sample config file: URLs as one comma string, clustering keys accepted and reported", () => {
    const file = tmpFile('etcd.conf.yml', [
      'name: infra0', 'data-dir: /var/lib/pgetcd', 'snapshot-count: 10000', 'heartbeat-interval: 100',
      "listen-client-urls: http://127.0.0.1:2379,http://10.0.0.1:2379", "initial-cluster: 'infra0=http://10.0.0.1:2380'",
      'peer-transport-security:', '  cert-file: /x', 'max-txn-ops: 200', 'enable-v2: false', '',
    ].join('\n'));
    const r = loadConfig(['--config-file', file], {});
    assert.notEqual(r, 'help');
    if (r === 'help') return;
    assert.equal(r.config.name, 'infra0');
    assert.deepEqual(r.config.listenClientUrls, ['http://127.0.0.1:2379', 'http://10.0.0.1:2379']);
    assert.equal(r.config.maxTxnOps, 200);
    assert.deepEqual(r.ignored.sort(), ['enable-v2', 'heartbeat-interval', 'initial-cluster', 'peer-transport-security', 'snapshot-count']);
    assert.deepEqual(cfg(['--config-file', tmpFile('l.yml', 'listen-client-urls: [http://127.0.0.1:1, http://127.0.0.1:2]\n')]).listenClientUrls, ['http://127.0.0.1:1', 'http://127.0.0.1:2']);
  });

  it("etcd's client-transport-security block sets the client TLS settings; flags still win", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-config-tls-'));
    for (const f of ['c.pem', 'k.pem', 'ca.pem', 'flag.pem']) fs.writeFileSync(path.join(dir, f), 'x');
    const file = tmpFile('tls.yml', [
      'client-transport-security:', `  cert-file: ${dir}/c.pem`, `  key-file: ${dir}/k.pem`, '  client-cert-auth: true',
      `  trusted-ca-file: ${dir}/ca.pem`, '  auto-tls: false', 'cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]', 'tls-min-version: TLS1.2', '',
    ].join('\n'));
    const c = cfg(['--config-file', file, '--cert-file', `${dir}/flag.pem`]);
    assert.equal(c.certFile, `${dir}/flag.pem`);
    assert.equal(c.keyFile, `${dir}/k.pem`);
    assert.equal(c.clientCertAuth, true);
    assert.equal(c.trustedCaFile, `${dir}/ca.pem`);
    assert.deepEqual(c.cipherSuites, ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256']);
    assert.equal(cfg([], { ETCD_CLIENT_CERT_AUTH: 'true' }).clientCertAuth, true);
  });

  it('booleans: --flag, --flag=false, --no-flag, and true/false in the environment', () => {
    assert.equal(cfg(['--no-migrate']).migrate, false);
    assert.equal(cfg(['--migrate=false']).migrate, false);
    assert.equal(cfg(['--no-key-index']).keyIndex, false);
    assert.equal(cfg(['--embedded-tcp']).embeddedTcp, true);
    assert.equal(cfg([], { PGETCD_EMBEDDED_TCP: 'true' }).embeddedTcp, true);
    assert.equal(cfg(['--embedded-tcp=false'], { PGETCD_EMBEDDED_TCP: 'true' }).embeddedTcp, false);
  });

  it('durations read Go spellings; the endpoint also comes from DATABASE_URL and --datastore-endpoint', () => {
    assert.equal(cfg(['--experimental-watch-progress-notify-interval', '1m30s']).progressNotifyIntervalMs, 90_000);
    assert.equal(cfg(['--experimental-watch-progress-notify-interval', '250ms']).progressNotifyIntervalMs, 250);
    assert.equal(cfg([], { DATABASE_URL: 'postgres://a/b' }).endpoint, 'postgres://a/b');
    assert.equal(cfg([], { DATABASE_URL: 'postgres://a/b', PGETCD_ENDPOINT: 'postgres://c/d' }).endpoint, 'postgres://c/d');
    assert.equal(cfg(['--datastore-endpoint', 'postgres://e/f']).endpoint, 'postgres://e/f');
  });

  it('--read-endpoint is repeatable and comma separated; a multi-host URL stays one item and gives one standby per host', () => {
    const c = cfg(['--read-endpoint', 'postgres://u@s1:5432/db', '--read-endpoint', 'postgres://u@s2:5432,s3:5433/db?sslmode=disable,postgresql://u@s4/db']);
    assert.deepEqual(c.readEndpoint, ['postgres://u@s1:5432/db', 'postgres://u@s2:5432,s3:5433/db?sslmode=disable', 'postgresql://u@s4/db']);
    assert.deepEqual(cfg([], { PGETCD_READ_ENDPOINT: 'postgres://a/b,postgres://c/d' }).readEndpoint, ['postgres://a/b', 'postgres://c/d']);
    assert.equal(cfg(['--read-max-lag', '250ms']).readMaxLag, 250);
    const targets = resolveReadEndpoints(c.readEndpoint, {}, {});
    assert.deepEqual(targets.map((t) => t.url), ['postgres://u@s1:5432/db', 'postgres://u@s2:5432/db', 'postgres://u@s3:5433/db', 'postgresql://u@s4/db']);
    assert.match(failure(['--read-endpoint', 'http://x']), /^--read-endpoint: invalid value$/);
    assert.throws(() => resolveReadEndpoints(['postgres://u@s1/db?sslmode=maybe'], {}, {}), /^ConfigError: --read-endpoint: sslmode "maybe"/);
  });

  it('invalid configuration is one line naming the setting and where the value came from', () => {
    assert.match(failure(['--bogus']), /unknown flag --bogus/);
    assert.match(failure(['--max-txn-ops', 'x']), /^--max-txn-ops: "x" is not a positive integer$/);
    assert.match(failure([], { PGETCD_MAX_TXN_OPS: '0' }), /^--max-txn-ops: .*\(from PGETCD_MAX_TXN_OPS\)$/);
    assert.match(failure(['--experimental-watch-progress-notify-interval', '10 minutes']), /^--experimental-watch-progress-notify-interval: .* not a duration/);
    assert.match(failure(['--listen-client-urls', 'ftp://x:1']), /^--listen-client-urls: /);
    assert.match(failure(['--listen-client-urls', 'http://[bad']), /^--listen-client-urls: .*not a URL/);
    assert.match(failure(['--log-level', 'loud']), /^--log-level: "loud" is not one of/);
    assert.match(failure(['--name']), /^--name needs a value$/);
    assert.match(failure(['--config-file', '/nonexistent/pgetcd.yml']), /^--config-file: cannot read/);
    assert.match(failure(['--config-file', tmpFile('bad.yml', 'nmae: x\n')]), /unknown key "nmae"/);
    assert.match(failure(['--config-file', tmpFile('bad2.yml', 'a: [\n')]), /^--config-file: cannot read .*bad2\.yml/);
    assert.match(failure([], { PGETCD_EMBEDDED_TCP: 'maybe' }), /^--embedded-tcp: /);
  });

  it('every setting is in --help and has its environment names', () => {
    for (const s of Object.values(SETTINGS)) {
      assert.ok(USAGE.includes(`--${s.flag}`), `--${s.flag} in --help`);
      assert.ok(envNames(s)[0]!.startsWith('PGETCD_'));
    }
  });

  it('README.md flags table matches the settings table (run `npm run readme-flags` to update it)', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    assert.equal(readme, withFlagsTable(readme, SETTINGS));
  });

  it('the pgetcd binary prints one line and exits 2 on a bad setting, and prints --help', () => {
    const bin = path.join(ROOT, 'bin', 'pgetcd.js');
    const bad = spawnSync(process.execPath, [bin, '--max-txn-ops', 'lots'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(bad.status, 2, bad.stderr);
    assert.equal(bad.stderr, 'pgetcd: --max-txn-ops: "lots" is not a positive integer\n');
    const unknown = spawnSync(process.execPath, [bin, '--listen-peer-urls', 'http://x:2380'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(unknown.status, 2);
    assert.equal(unknown.stderr.trim().split('\n').length, 1);
    const help = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(help.status, 0);
    assert.ok(help.stdout.includes(USAGE), 'pgetcd --help shows the server settings (after the list of commands)');
  });
});
