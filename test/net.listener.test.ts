import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseListenUrl } from '../src/net/url.ts';
import { classify, H2_PREFACE } from '../src/net/sniff.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { startServer, type TestServer } from './helpers/server.ts';

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/** Sends `bytes` one at a time and returns everything the server answered until it closed. */
function trickle(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => { out += d; });
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.on('connect', async () => {
      for (const b of bytes) {
        s.write(Buffer.from([b]));
        await new Promise((r) => setTimeout(r, 2));
      }
    });
  });
}

describe('listen URLs', () => {
  it('takes etcd-style URLs and bare host:port, keeping explicit default ports', () => {
    assert.deepEqual(parseListenUrl('http://127.0.0.1:2379'), { raw: 'http://127.0.0.1:2379', scheme: 'http', host: '127.0.0.1', port: 2379 });
    assert.equal(parseListenUrl('127.0.0.1:0').port, 0);
    assert.equal(parseListenUrl('http://0.0.0.0:80').port, 80);
    assert.equal(parseListenUrl('http://localhost').port, 2379);
    assert.equal(parseListenUrl('http://[::1]:2380').host, '::1');
    assert.equal(parseListenUrl('https://10.0.0.1:2379').scheme, 'https');
    assert.throws(() => parseListenUrl('unix:///tmp/x'), /scheme must be http or https/);
    assert.throws(() => parseListenUrl('http://127.0.0.1:2379/path'), /must not have a path/);
  });

  it('classifies a connection from its first differing byte, or the whole HTTP/2 preface', () => {
    assert.equal(classify(Buffer.from('G')), 'http1');
    assert.equal(classify(Buffer.from('PRI * HTTP/1.1')), 'http1');
    assert.equal(classify(H2_PREFACE.subarray(0, 10)), undefined);
    assert.equal(classify(H2_PREFACE), 'h2');
    assert.equal(classify(Buffer.concat([H2_PREFACE, Buffer.alloc(9)])), 'h2');
  });
});

describe('client port: gRPC and HTTP/1.1 on one listener', () => {
  let srv: TestServer;
  let raw: Raw;
  let port: number;
  before(async () => {
    srv = await startServer({ etcdVersion: '3.5.17' }); // a 3.5 answer: no "storage" in /version
    raw = rawClients(srv.endpoint);
    port = srv.app.ports[0]!;
  });
  after(async () => {
    raw.close();
    await srv.stop();
  });

  it('serves gRPC and HTTP/1.1 /version on the same port', async () => {
    await raw.call('KV', 'Put', { key: Buffer.from('/net/a'), value: Buffer.from('1') });
    const r = await raw.call('KV', 'Range', { key: Buffer.from('/net/a') });
    assert.equal(Buffer.from(r.kvs[0].value).toString(), '1');
    const v = await httpGet(port, '/version');
    assert.equal(v.status, 200);
    assert.deepEqual(JSON.parse(v.body), { etcdserver: '3.5.17', etcdcluster: '3.5.0' });
  });

  it('an unknown HTTP path gets 404, and gRPC still works afterwards', async () => {
    const r = await httpGet(port, '/nope');
    assert.equal(r.status, 404);
    await raw.call('KV', 'Range', { key: Buffer.from('/net/a') });
  });

  it('an HTTP/1.1 request sent one byte at a time is answered', async () => {
    const out = await trickle(port, Buffer.from('GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    assert.match(out, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(out, /"etcdserver":"3\.5\.17"/);
  });

  it('keep-alive HTTP/1.1 connections carry several requests, pipelined ones included', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) => new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path, agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); }).on('error', reject);
    });
    assert.deepEqual([await get('/version'), await get('/nope'), await get('/version')], [200, 404, 200]);
    agent.destroy();
    const req = 'GET /version HTTP/1.1\r\nHost: x\r\n\r\n';
    const out = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(req + req.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')));
      let o = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => { o += d; });
      s.on('end', () => resolve(o));
      s.on('error', reject);
    });
    assert.equal(out.match(/HTTP\/1\.1 200 OK/g)?.length, 2);
  });

  it('a connection that starts like the HTTP/2 preface but is not gets an HTTP/1.1 answer', async () => {
    const out = await trickle(port, Buffer.from('PRI * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    assert.match(out, /^HTTP\/1\.1 (400|404|405|505)/);
  });
});
