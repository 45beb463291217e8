import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { App } from '../src/app.ts';
import { DEFAULTS, type Config } from '../src/config.ts';
import { EmbeddedPostgres } from '../src/db/embedded.ts';
import { targetToUrl } from '../src/db/target.ts';
import { createLogger } from '../src/log.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { freePort, startServer, type TestServer } from './helpers/server.ts';
import { waitFor } from './helpers/wait.ts';

async function get(url: string, init?: RequestInit): Promise<{ status: number; body: string; headers: Headers }> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.text(), headers: res.headers };
}

/** Sends raw bytes on a new connection and returns what comes back until the server closes it (or `ms` pass). */
function rawExchange(port: number, bytes: string | Buffer, ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    const t = setTimeout(() => { s.destroy(); resolve(out); }, ms);
    s.on('data', (d) => { out += d.toString('latin1'); });
    s.on('close', () => { clearTimeout(t); resolve(out); });
    s.on('error', (e) => { clearTimeout(t); reject(e); });
    s.write(bytes);
  });
}

describe('HTTP endpoints', () => {
  let srv: TestServer;
  let base: string;
  let client: string;

  before(async () => {
    base = `http://127.0.0.1:${await freePort()}`;
    srv = await startServer({ listenMetricsUrls: [base] });
    client = `http://${srv.endpoint}`;
  });
  after(async () => { await srv?.stop(); });

  it('/health, /version, /livez and /readyz answer as etcd does, on the metrics port and the client port', async () => {
    for (const b of [base, client]) {
      const h = await waitFor('healthy', async () => {
        const r = await get(`${b}/health`);
        return r.status === 200 ? r : undefined;
      });
      assert.equal(h.body, '{"health":"true","reason":""}');
      assert.match(h.headers.get('content-type') ?? '', /^application\/json/);
      const v = await get(`${b}/version`);
      assert.equal(v.status, 200);
      assert.equal(v.body, '{"etcdserver":"3.6.11","etcdcluster":"3.6.0","storage":"3.6.0"}');
      assert.deepEqual(await get(`${b}/livez`).then((r) => [r.status, r.body]), [200, 'ok\n']);
      const ready = await waitFor('ready', async () => {
        const r = await get(`${b}/readyz?verbose`);
        return r.status === 200 ? r : undefined;
      });
      assert.equal(ready.body, '[+]migrations ok\n[+]database ok\n[+]key_index ok\n[+]watch_listener ok\nok\n');
      const m = await get(`${b}/metrics`);
      assert.equal(m.status, 200);
      assert.match(m.body, /^etcd_server_has_leader 1$/m);
    }
  });

  it('unknown paths are 404, other methods 405 with Allow', async () => {
    for (const b of [base, client]) {
      assert.equal((await get(`${b}/nope`)).status, 404);
      assert.equal((await get(`${b}/`)).status, 404);
      for (const p of ['/health', '/metrics', '/version', '/readyz', '/livez']) {
        const r = await get(`${b}${p}`, { method: 'POST', body: 'x' });
        assert.equal(r.status, 405, `POST ${p}`);
        assert.equal(r.headers.get('allow'), 'GET, HEAD');
      }
      assert.equal((await get(`${b}/health`, { method: 'DELETE' })).status, 405);
      assert.equal((await get(`${b}/health`, { method: 'HEAD' })).status, 200);
    }
  });

  it('garbage gets 400 and the connection closed', async () => {
    const port = Number(new URL(base).port);
    const out = await rawExchange(port, 'NOT HTTP AT ALL\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 400 Bad Request\r\n/);
  });

  it('slow and garbage HTTP clients on both ports do not stall gRPC', async () => {
    const ports = [Number(new URL(base).port), Number(srv.endpoint.split(':')[1])];
    const sockets: net.Socket[] = [];
    for (const port of ports) {
      for (let i = 0; i < 40; i++) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => undefined);
        // Half a request line and headers that never finish, or bytes that are not HTTP at all.
        s.write(i % 2 === 0 ? 'GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ' : Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x01]));
        sockets.push(s);
      }
    }
    const raw: Raw = rawClients(srv.endpoint);
    try {
      const t0 = Date.now();
      for (let i = 0; i < 20; i++) {
        await raw.call('KV', 'Put', { key: Buffer.from(`slow/${i}`), value: Buffer.from('v') });
        const r = await raw.call('KV', 'Range', { key: Buffer.from(`slow/${i}`) });
        assert.equal(r.kvs.length, 1);
      }
      // The slow clients hold 80 connections for as long as they like; the writes do not wait on them.
      assert.ok(sockets.every((s) => !s.destroyed), 'the slow clients are still connected');
      const h = await get(`${base}/health`);
      assert.equal(h.status, 200);
      assert.ok(Date.now() - t0 < 30_000);
    } finally {
      raw.close();
      for (const s of sockets) s.destroy();
    }
  });
});

describe('/health and /readyz follow PostgreSQL', () => {
  // A private PostgreSQL: stopping the test run's shared one would break the files running alongside.
  let dir: string;
  let pg: EmbeddedPostgres;
  let app: App | undefined;
  let base: string;

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgetcd-health-'));
    await fs.chmod(dir, 0o755);
  });
  after(async () => {
    await app?.stop();
    await pg?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('/readyz says "not ready" until the migrations ran; /livez answers meanwhile', async () => {
    // pgetcd with its embedded PostgreSQL: the HTTP side is up while initdb and the migrations run.
    base = `http://127.0.0.1:${await freePort()}`;
    const cfg: Config = {
      ...DEFAULTS,
      dataDir: path.join(dir, 'embedded'),
      embeddedPort: await freePort(),
      listenClientUrls: [`http://127.0.0.1:${await freePort()}`],
      advertiseClientUrls: [],
      listenMetricsUrls: [base],
    };
    let started = false;
    const starting = App.start(cfg, createLogger('silent')).then((a) => { started = true; return a; });
    const early = await waitFor('the HTTP side before start-up finished', async () => {
      const r = await get(`${base}/readyz`).catch(() => undefined);
      return r && { ready: r, started, live: await get(`${base}/livez`), health: await get(`${base}/health`) };
    }, 60_000, 10);
    app = await starting;
    assert.equal(early.started, false, 'answered while starting');
    assert.equal(early.ready.status, 503);
    assert.match(early.ready.body, /^\[-\]migrations failed: not run yet$/m);
    assert.equal(early.live.status, 200);
    assert.equal(early.health.status, 503);
    assert.equal(early.health.body, '{"health":"false","reason":"STARTING"}\n');
    await waitFor('ready after start-up', async () => ((await get(`${base}/readyz`)).status === 200 ? true : undefined));
    await app.stop();
    app = undefined;
  });

  it('/health is 503 with a reason while PostgreSQL is stopped, and 200 after it is back', async () => {
    pg = new EmbeddedPostgres({ dataDir: path.join(dir, 'db'), port: await freePort(), tcp: false, log: createLogger('silent') });
    const url = targetToUrl(await pg.start());
    const srv = await startServer({ databaseUrl: url, listenMetricsUrls: [base] });
    app = srv.app;
    await waitFor('healthy', async () => ((await get(`${base}/health`)).status === 200 ? true : undefined));
    await pg.stop();
    const down = await waitFor('unhealthy', async () => {
      const r = await get(`${base}/health`);
      return r.status === 503 ? r : undefined;
    }, 30_000, 100);
    assert.equal(down.body, '{"health":"false","reason":"DATABASE UNREACHABLE"}\n');
    assert.equal(down.headers.get('content-type'), 'text/plain; charset=utf-8');
    const ready = await get(`${base}/readyz?verbose`);
    assert.equal(ready.status, 503);
    assert.match(ready.body, /^\[-\]database failed: database unreachable$/m);
    assert.equal((await get(`${base}/livez`)).status, 200);
    const m = await get(`${base}/metrics`);
    assert.match(m.body, /^etcd_server_has_leader 0$/m);

    await pg.restart();
    const up = await waitFor('healthy again', async () => {
      const r = await get(`${base}/health`);
      return r.status === 200 ? r : undefined;
    }, 60_000, 200);
    assert.equal(up.body, '{"health":"true","reason":""}');
    await waitFor('ready again', async () => ((await get(`${base}/readyz`)).status === 200 ? true : undefined), 60_000, 200);
    const m2 = await get(`${base}/metrics`);
    assert.match(m2.body, /^etcd_server_has_leader 1$/m);
    assert.match(m2.body, /^etcd_server_leader_changes_seen_total 2$/m);
  });
});
