/**
 * etcd's --tls-min-version and --cipher-suites on the client port, seen from a real TLS client
 * (node:tls): what is refused at the handshake and what gets negotiated.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { hasOpenssl, issue, makeCa, type Ca, type Issued } from './helpers/certs.ts';
import { freePort, startServer, type TestServer } from './helpers/server.ts';
import * as grpc from '@grpc/grpc-js';
import { rawClients } from './helpers/raw.ts';

/** A Put and a Range through grpc-js over TLS. */
async function putGetOver(port: number, ca: Ca, key: string): Promise<void> {
  const raw = rawClients(`127.0.0.1:${port}`, grpc.credentials.createSsl(fs.readFileSync(ca.cert)));
  try {
    await raw.call('KV', 'Put', { key: Buffer.from(key), value: Buffer.from('v') });
    const r = await raw.call<{ kvs: Array<{ value: Buffer }> }>('KV', 'Range', { key: Buffer.from(key) });
    assert.equal(r.kvs[0]?.value.toString(), 'v');
  } finally {
    raw.close();
  }
}

/** Connects and resolves with the negotiated protocol and cipher, or rejects with the handshake error. */
function handshake(port: number, ca: Ca, opts: tls.ConnectionOptions): Promise<{ protocol: string | null; cipher: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(ca.cert), servername: 'localhost', ALPNProtocols: ['h2'], ...opts }, () => {
      const r = { protocol: s.getProtocol(), cipher: s.getCipher().name };
      s.end();
      resolve(r);
    });
    s.on('error', reject);
  });
}

describe('--tls-min-version and --cipher-suites', { skip: hasOpenssl() ? false : 'openssl is not installed' }, () => {
  let dir: string;
  let ca: Ca;
  let server: Issued;
  const servers: TestServer[] = [];

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-tlsver-'));
    ca = makeCa(path.join(dir, 'ca'), 'ca');
    // The helper's keys are P-256: ECDSA suites.
    server = issue(ca, 'server', 'localhost', ['DNS:localhost', 'IP:127.0.0.1'], 4001);
  });

  after(async () => {
    for (const s of servers) await s.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function start(extra: Parameters<typeof startServer>[0]): Promise<number> {
    const port = await freePort();
    const urls = [`https://127.0.0.1:${port}`];
    servers.push(await startServer({ listenClientUrls: urls, advertiseClientUrls: urls, certFile: server.cert, keyFile: server.key, ...extra }));
    return port;
  }

  it('TLS1.3: a client that stops at TLS 1.2 is refused; a TLS 1.3 client is served', async () => {
    const port = await start({ tlsMinVersion: 'TLS1.3' });
    await assert.rejects(handshake(port, ca, { maxVersion: 'TLSv1.2' }), /protocol version|version/i);
    assert.equal((await handshake(port, ca, {})).protocol, 'TLSv1.3');
    await putGetOver(port, ca, 'tls13');
  });

  it('the default (TLS1.2) serves TLS 1.2 clients', async () => {
    const port = await start({});
    assert.equal((await handshake(port, ca, { maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
  });

  it('cipher suites: TLS 1.2 negotiates only a listed suite; a client offering none of them is refused; TLS 1.3 is unaffected', async () => {
    const port = await start({ cipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'] });
    const r = await handshake(port, ca, { maxVersion: 'TLSv1.2' });
    assert.equal(r.protocol, 'TLSv1.2');
    assert.equal(r.cipher, 'ECDHE-ECDSA-AES256-GCM-SHA384');
    await assert.rejects(handshake(port, ca, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }), /handshake failure|no shared cipher|alert/i);
    assert.equal((await handshake(port, ca, {})).protocol, 'TLSv1.3');
  });
});
