import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { hasOpenssl, issue, makeCa, type Ca, type Issued } from './helpers/certs.ts';
import { rawClients } from './helpers/raw.ts';
import { freePort, startServer, type TestServer } from './helpers/server.ts';
import { RawWatch } from './helpers/watch.ts';
import { ConfigError, parseConfig } from '../src/config.ts';

const execFileP = promisify(execFile);
const ETCDCTL = ['/usr/bin/etcdctl', '/usr/local/bin/etcdctl'].find((p) => existsSync(p));

function creds(ca: Ca, client?: Issued): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(fs.readFileSync(ca.cert), client ? fs.readFileSync(client.key) : null, client ? fs.readFileSync(client.cert) : null);
}

/** The serial number of the certificate a new TLS connection to the port is shown. */
function servedSerial(port: number, ca: Ca, client: Issued): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(ca.cert), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key), ALPNProtocols: ['h2'], servername: 'localhost' }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

describe('client TLS (https:// in --listen-client-urls)', { skip: hasOpenssl() ? false : 'openssl is not installed' }, () => {
  let dir: string;
  let ca: Ca;
  let other: Ca;
  let server: Issued;
  let client: Issued;
  let stranger: Issued;
  let srv: TestServer;
  let tlsPort: number;
  let plainPort: number;
  let metricsPort: number;
  // The server's certificate files, rewritten in place by the rotation test.
  let certFile: string;
  let keyFile: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-tls-'));
    ca = makeCa(path.join(dir, 'ca'), 'ca');
    other = makeCa(path.join(dir, 'other'), 'other');
    server = issue(ca, 'server', 'localhost', ['DNS:localhost', 'IP:127.0.0.1'], 1001);
    client = issue(ca, 'client', 'root', [], 2001);
    stranger = issue(other, 'stranger', 'root', [], 3001);
    certFile = path.join(dir, 'serving.pem');
    keyFile = path.join(dir, 'serving-key.pem');
    fs.copyFileSync(server.cert, certFile);
    fs.copyFileSync(server.key, keyFile);
    tlsPort = await freePort();
    plainPort = await freePort();
    metricsPort = await freePort();
    const urls = [`https://127.0.0.1:${tlsPort}`, `http://127.0.0.1:${plainPort}`];
    srv = await startServer({
      listenClientUrls: urls, advertiseClientUrls: urls, listenMetricsUrls: [`https://127.0.0.1:${metricsPort}`],
      certFile, keyFile, clientCertAuth: true, trustedCaFile: ca.cert,
    });
  });

  after(async () => {
    await srv?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('etcdctl with --cacert/--cert/--key puts and gets over mutual TLS', { skip: ETCDCTL ? false : 'etcdctl is not installed' }, async () => {
    const base = ['--endpoints', `https://127.0.0.1:${tlsPort}`, '--cacert', ca.cert, '--cert', client.cert, '--key', client.key, '--dial-timeout', '5s'];
    const env = { ...process.env, ETCDCTL_API: '3' };
    await execFileP(ETCDCTL!, [...base, 'put', 'tls-key', 'tls-value'], { env });
    const { stdout } = await execFileP(ETCDCTL!, [...base, 'get', 'tls-key', '--print-value-only'], { env });
    assert.equal(stdout.trim(), 'tls-value');
  });

  it('etcdctl without a client certificate, or with one from another CA, is refused', { skip: ETCDCTL ? false : 'etcdctl is not installed' }, async () => {
    const env = { ...process.env, ETCDCTL_API: '3' };
    const common = ['--endpoints', `https://127.0.0.1:${tlsPort}`, '--cacert', ca.cert, '--dial-timeout', '3s', '--command-timeout', '4s'];
    await assert.rejects(execFileP(ETCDCTL!, [...common, 'get', 'tls-key'], { env }));
    await assert.rejects(execFileP(ETCDCTL!, [...common, '--cert', stranger.cert, '--key', stranger.key, 'get', 'tls-key'], { env }));
  });

  it('grpc-js: no client certificate and a foreign one fail at the handshake; the CA-signed one works; plain http beside it still serves', async () => {
    const call = (c: grpc.ChannelCredentials): Promise<unknown> => {
      const raw = rawClients(`127.0.0.1:${tlsPort}`, c);
      return raw.call('KV', 'Range', { key: Buffer.from('tls-key') }).finally(() => raw.close());
    };
    await assert.rejects(call(creds(ca)), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
    await assert.rejects(call(creds(ca, stranger)), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
    await call(creds(ca, client));
    const plain = rawClients(`127.0.0.1:${plainPort}`);
    try {
      await plain.call('KV', 'Range', { key: Buffer.from('tls-key') });
    } finally {
      plain.close();
    }
  });

  it('HTTP/1.1 over the same TLS port (ALPN http/1.1) answers /health; https:// metrics URLs serve with the same certificate', async () => {
    const get = (port: number, p: string): Promise<string> => new Promise<string>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, path: p, ca: fs.readFileSync(ca.cert), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key), servername: 'localhost' }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => { b += d.toString(); });
        res.on('end', () => resolve(b));
      });
      req.on('error', reject);
    });
    assert.match(await get(metricsPort, '/metrics'), /etcd_server_has_leader|process_cpu/);
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port: tlsPort, path: '/health', ca: fs.readFileSync(ca.cert), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key), servername: 'localhost' }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => { b += d.toString(); });
        res.on('end', () => resolve(b));
      });
      req.on('error', reject);
    });
    assert.match(body, /"health":\s*"true"/);
  });

  it('rotated certificate files are served to new connections without a restart; an open watch stream keeps flowing', async () => {
    assert.equal(await servedSerial(tlsPort, ca, client), (1001).toString(16).toUpperCase().padStart(4, '0'));
    const raw = rawClients(`127.0.0.1:${tlsPort}`, creds(ca, client));
    const w = new RawWatch(raw);
    try {
      await w.watch({ key: Buffer.from('rot/'), range_end: Buffer.from('rot0') });
      await raw.call('KV', 'Put', { key: Buffer.from('rot/1'), value: Buffer.from('before') });
      assert.equal((await w.next()).events[0]?.kv.value.toString(), 'before');
      // Rotate: a new certificate (new serial) and key, written the way a kubelet swaps a Secret.
      const next = issue(ca, 'server2', 'localhost', ['DNS:localhost', 'IP:127.0.0.1'], 1002);
      fs.copyFileSync(next.key, keyFile + '.tmp');
      fs.copyFileSync(next.cert, certFile + '.tmp');
      fs.renameSync(keyFile + '.tmp', keyFile);
      fs.renameSync(certFile + '.tmp', certFile);
      const want = (1002).toString(16).toUpperCase().padStart(4, '0');
      const deadline = Date.now() + 15_000;
      let seen = '';
      while (Date.now() < deadline && (seen = await servedSerial(tlsPort, ca, client)) !== want) await new Promise((r) => setTimeout(r, 100));
      assert.equal(seen, want, 'new connections get the rotated certificate');
      await raw.call('KV', 'Put', { key: Buffer.from('rot/2'), value: Buffer.from('after') });
      assert.equal((await w.next()).events[0]?.kv.value.toString(), 'after', 'the stream opened before the rotation still delivers');
    } finally {
      w.stream.end();
      raw.close();
    }
  });

  it('bad TLS configuration is one line naming the setting', () => {
    const one = (argv: string[]): string => {
      try {
        parseConfig(argv, {});
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.message;
      }
      return assert.fail('no error');
    };
    const https = ['--listen-client-urls', 'https://127.0.0.1:2379'];
    assert.match(one(https), /^--cert-file: needed/);
    assert.match(one([...https, '--cert-file', server.cert]), /^--key-file: needed/);
    assert.match(one([...https, '--cert-file', server.cert, '--key-file', client.key]), /^--cert-file\/--key-file: .*/);
    assert.match(one([...https, '--cert-file', server.cert, '--key-file', server.key, '--client-cert-auth']), /^--trusted-ca-file: needed/);
    assert.match(one([...https, '--cert-file', '/nonexistent.pem']), /^--cert-file: cannot read/);
    assert.match(one([...https, '--cert-file', server.cert, '--key-file', server.key, '--cipher-suites', 'TLS_FAKE']), /^--cipher-suites: unknown cipher suite "TLS_FAKE"/);
  });
});
