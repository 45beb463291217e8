/**
 * Every `:authority` etcd's server accepts gets an answer from pgetcd too (issue 18, item 1):
 * clients that dial one endpoint as given (etcdctl endpoint status/hashkv/defrag, clientv3's
 * Status from kube-apiserver) send `http://host:port`, which nghttp2 alone resets.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadEtcdProto } from '../src/server/proto.ts';
import { HpackDecoder, encodeLiterals, huffmanDecode } from '../src/net/hpack.ts';
import { fixAuthority, fixHeaders, h2Gate } from '../src/net/h2gate.ts';
import { H2_PREFACE } from '../src/net/sniff.ts';
import { startServer, type TestServer } from './helpers/server.ts';

const execFileP = promisify(execFile);
const ETCDCTL = ['/usr/bin/etcdctl', '/usr/local/bin/etcdctl'].find((p) => existsSync(p));

interface GrpcAnswer { status: string | undefined; message: string | undefined; body: Buffer; rst?: number }

/** One unary gRPC call over a raw node:http2 session, with the headers we choose. */
function call(session: http2.ClientHttp2Session, path: string, req: Buffer, authority: string | undefined): Promise<GrpcAnswer> {
  return new Promise((resolve, reject) => {
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST', ':path': path, ':scheme': 'http',
      'content-type': 'application/grpc', te: 'trailers',
    };
    if (authority !== undefined) headers[':authority'] = authority;
    const s = session.request(headers);
    const chunks: Buffer[] = [];
    let trailers: http2.IncomingHttpHeaders = {};
    s.on('response', (h) => { trailers = { ...h }; });
    s.on('trailers', (t) => { trailers = { ...trailers, ...t }; });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      if (s.rstCode && s.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
        resolve({ status: undefined, message: undefined, body: Buffer.alloc(0), rst: s.rstCode });
        return;
      }
      resolve({ status: trailers['grpc-status'] as string | undefined, message: trailers['grpc-message'] as string | undefined, body: Buffer.concat(chunks) });
    });
    s.on('aborted', () => reject(new Error('aborted')));
    const frame = Buffer.alloc(5 + req.length);
    frame.writeUInt32BE(req.length, 1);
    req.copy(frame, 5);
    s.end(frame);
  });
}

describe('HPACK pieces', () => {
  it('decodes RFC 7541 C.4 (Huffman, dynamic table across blocks)', () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(Buffer.from('828684418cf1e3c2e5f23a6ba0ab90f4ff', 'hex')),
      [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']]);
    assert.deepEqual(d.decode(Buffer.from('828684be5886a8eb10649cbf', 'hex')).slice(3),
      [[':authority', 'www.example.com'], ['cache-control', 'no-cache']]);
    assert.deepEqual(d.decode(Buffer.from('828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf', 'hex')).slice(1),
      [[':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']]);
  });

  it('literal encoding reads back the same headers with no table', () => {
    const h: Array<[string, string]> = [[':path', '/etcdserverpb.KV/Range'], ['x-long', 'v'.repeat(300)]];
    assert.deepEqual(new HpackDecoder().decode(encodeLiterals(h)), h);
    assert.throws(() => huffmanDecode(Buffer.from([0x00])), /padding/);
  });

  it('fixes authorities nghttp2 refuses and leaves the rest alone', () => {
    assert.equal(fixAuthority('http://127.0.0.1:2379'), '127.0.0.1:2379');
    assert.equal(fixAuthority('https://[::1]:2379'), '[::1]:2379');
    assert.equal(fixAuthority('a b/c'), 'abc');
    assert.equal(fixHeaders([[':path', '/'], [':authority', '127.0.0.1:2379']]), undefined);
    assert.deepEqual(fixHeaders([[':path', '/'], [':authority', '']]), [[':path', '/'], [':authority', 'localhost']]);
    assert.deepEqual(fixHeaders([[':path', '/'], ['te', 'trailers']]), [[':path', '/'], [':authority', 'localhost'], ['te', 'trailers']]);
  });
});

describe(':authority values etcd accepts', () => {
  let srv: TestServer;
  let port: number;
  const proto = loadEtcdProto();
  const enc = (service: 'KV' | 'Maintenance', method: string, req: object): Buffer => {
    const def = proto.services[service][method]!;
    return def.requestSerialize(req);
  };
  const calls = (): Array<[string, Buffer]> => [
    ['/etcdserverpb.Maintenance/Status', enc('Maintenance', 'Status', {})],
    ['/etcdserverpb.Maintenance/HashKV', enc('Maintenance', 'HashKV', {})],
    ['/etcdserverpb.Maintenance/Defragment', enc('Maintenance', 'Defragment', {})],
    ['/etcdserverpb.KV/Range', enc('KV', 'Range', { key: Buffer.from('/auth/a') })],
  ];

  before(async () => {
    srv = await startServer({});
    port = srv.app.ports[0]!;
  });
  after(async () => srv.stop());

  const authorities = (): Array<[string, string | undefined]> => [
    ['http://127.0.0.1:P', `http://127.0.0.1:${port}`],
    ['https://127.0.0.1:P', `https://127.0.0.1:${port}`],
    ['127.0.0.1:P', `127.0.0.1:${port}`],
    ['localhost', 'localhost'],
    ['empty', ''],
    ['none', undefined],
  ];

  it('Status, HashKV, Defragment and Range answer OK, each authority on its own connection', async () => {
    for (const [label, authority] of authorities()) {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      try {
        for (const [path, req] of calls()) {
          // Twice: the second request's headers come from the client's HPACK table.
          for (let i = 0; i < 2; i++) {
            const a = await call(session, path, req, authority);
            assert.equal(a.rst, undefined, `${label} ${path}: stream reset with code ${a.rst}`);
            assert.equal(a.status, '0', `${label} ${path}: grpc-status ${a.status} ${a.message}`);
            assert.ok(a.body.length >= 5, `${label} ${path}: no response message`);
          }
        }
      } finally {
        session.close();
      }
    }
  });

  it('a connection that needs its headers fixed carries many requests and large answers', async () => {
    const value = Buffer.alloc(200_000, 7);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const put = await call(session, '/etcdserverpb.KV/Put', enc('KV', 'Put', { key: Buffer.from('/auth/big'), value }), `http://127.0.0.1:${port}`);
      assert.equal(put.status, '0', put.message);
      const answers = await Promise.all(Array.from({ length: 50 }, () =>
        call(session, '/etcdserverpb.KV/Range', enc('KV', 'Range', { key: Buffer.from('/auth/big') }), `http://127.0.0.1:${port}`)));
      for (const a of answers) {
        assert.equal(a.status, '0', a.message);
        const r = proto.services.KV.Range!.responseDeserialize(a.body.subarray(5)) as { kvs: Array<{ value: Buffer }> };
        assert.equal(r.kvs[0]!.value.length, value.length);
      }
    } finally {
      session.close();
    }
  });

  it('etcdctl endpoint status, hashkv and defrag with an http:// endpoint', { skip: ETCDCTL ? false : 'etcdctl not installed' }, async () => {
    const env = { ...process.env, ETCDCTL_API: '3' };
    for (const ep of [`http://127.0.0.1:${port}`, `127.0.0.1:${port}`]) {
      for (const args of [['endpoint', 'status', '-w', 'json'], ['endpoint', 'hashkv', '-w', 'json'], ['defrag']]) {
        const { stdout } = await execFileP(ETCDCTL!, ['--endpoints', ep, '--command-timeout', '10s', ...args], { env });
        if (args[0] === 'defrag') assert.match(stdout, /Finished defragmenting etcd member/);
        else assert.equal(JSON.parse(stdout)[0].Endpoint, ep);
      }
    }
  });
});

describe('the gate decides each connection once', () => {
  /** A listener whose connections pass h2Gate, then an HTTP/2 server that echoes :authority. */
  let server: net.Server;
  let h2: http2.Http2Server;
  let port: number;
  const modes: Array<'native' | 'shim'> = [];
  before(async () => {
    h2 = http2.createServer();
    h2.on('stream', (s, h) => {
      s.respond({ ':status': 200 });
      s.end(String(h[':authority']));
    });
    server = net.createServer((sock) => {
      sock.on('error', () => undefined);
      void h2Gate(sock).then((c) => {
        if (!c) return;
        modes.push(c === sock ? 'native' : 'shim');
        h2.emit('connection', c);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    h2.close();
  });

  const get = (session: http2.ClientHttp2Session, authority: string): Promise<string> => new Promise((resolve, reject) => {
    const s = session.request({ ':path': '/', ':authority': authority });
    let body = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => { body += d; });
    s.on('end', () => resolve(body));
    s.on('error', reject);
  });
  const ping = (session: http2.ClientHttp2Session): Promise<void> => new Promise((resolve, reject) => {
    session.ping(Buffer.from('pgetcd!!'), (err) => (err ? reject(err) : resolve()));
  });

  it('PINGed twice before its first request: answered by the gate, and a plain first request goes native', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      await new Promise((r) => session.once('connect', r));
      await new Promise((r) => setTimeout(r, 300));
      await ping(session);
      await ping(session);
      const n = modes.length;
      assert.equal(await get(session, `127.0.0.1:${port}`), `127.0.0.1:${port}`);
      assert.deepEqual(modes.slice(n), ['native']);
      // After the hand-over nghttp2 answers PINGs itself.
      await ping(session);
      assert.equal(await get(session, `127.0.0.1:${port}`), `127.0.0.1:${port}`);
    } finally {
      session.close();
    }
  });

  it('a client that sends its first requests and their bodies before it ACKs the server\'s SETTINGS goes native', async () => {
    const n = modes.length;
    // node's client writes requests right after its preface, without waiting for the server.
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const bodies = await Promise.all(Array.from({ length: 10 }, () => new Promise<string>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/', ':authority': `127.0.0.1:${port}` });
        let body = '';
        s.setEncoding('utf8');
        s.on('data', (d: string) => { body += d; });
        s.on('end', () => resolve(body));
        s.on('error', reject);
        s.end(Buffer.alloc(100, 1));
      })));
      assert.deepEqual(bodies, Array.from({ length: 10 }, () => `127.0.0.1:${port}`));
      assert.deepEqual(modes.slice(n), ['native']);
    } finally {
      session.close();
    }
  });

  it('a client that waits for the ACK of its SETTINGS before any request gets it (native after a second)', async () => {
    const n = modes.length;
    const sock = net.connect(port, '127.0.0.1');
    try {
      await new Promise((r) => sock.once('connect', r));
      // The preface and an empty SETTINGS, then nothing until the server ACKs it.
      sock.write(Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
      const t0 = Date.now();
      let buf = Buffer.alloc(0);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no SETTINGS ACK within 5 s')), 5000);
        sock.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          for (let pos = 0; pos + 9 <= buf.length; pos += 9 + buf.readUIntBE(pos, 3)) {
            if (buf[pos + 3] === 4 && (buf[pos + 4]! & 1)) { clearTimeout(timer); resolve(); return; }
          }
        });
      });
      assert.ok(Date.now() - t0 < 4000);
      assert.deepEqual(modes.slice(n), ['native']);
    } finally {
      sock.destroy();
    }
  });

  it('a PING, then a first request with an http:// authority: shimmed, and answered', async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      await new Promise((r) => session.once('connect', r));
      await ping(session);
      const n = modes.length;
      assert.equal(await get(session, `http://127.0.0.1:${port}`), `127.0.0.1:${port}`);
      assert.deepEqual(modes.slice(n), ['shim']);
      await ping(session);
      assert.equal(await get(session, `https://127.0.0.1:${port}`), `127.0.0.1:${port}`);
    } finally {
      session.close();
    }
  });
});
