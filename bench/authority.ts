/**
 * What the `:authority` shim (src/net/h2gate.ts) costs per request, measured in isolation.
 *
 *   node --import tsx bench/authority.ts [--requests 20000] [--repeat 7]
 *
 * 1. Record: node's own HTTP/2 client sends `--requests` gRPC-shaped unary requests (POST
 *    /etcdserverpb.KV/Range, te: trailers, content-type application/grpc, a 20-byte body) to a
 *    TCP server that answers with one empty SETTINGS frame and keeps every byte it receives.
 *    Twice: once with `:authority: 127.0.0.1:P` (what clientv3's balancer sends) and once with
 *    `:authority: http://127.0.0.1:P` (what clientv3's per-endpoint Status/HashKV/Defragment
 *    and etcdctl's endpoint commands send). node's client uses HPACK indexing and Huffman, as
 *    Go's does.
 * 2. Replay each recording into a listener running h2Gate, whose output is read and discarded
 *    (no nghttp2, no gRPC): the plain recording is handed back as the socket itself (native),
 *    the URL one goes through the shim. The process CPU (user+system) of a replay, minus the
 *    same replay into a listener that only discards (baseline), is the gate's cost; divided
 *    by the request count, its cost per request. Medians over `--repeat` runs.
 *
 * Ratios matter, not the absolute figures: print `uptime` with the result.
 */
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { Duplex } from 'node:stream';
import { h2Gate } from '../src/net/h2gate.ts';
import { H2_PREFACE } from '../src/net/sniff.ts';

const { values } = parseArgs({ options: { requests: { type: 'string' }, repeat: { type: 'string' } } });
const REQUESTS = Number(values.requests ?? 20_000);
const REPEAT = Number(values.repeat ?? 7);
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

async function listen(onSocket: (s: net.Socket) => void): Promise<{ port: number; close(): void }> {
  const server = net.createServer(onSocket);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  if (!a || typeof a === 'string') throw new Error('no port');
  return { port: a.port, close: () => server.close() };
}

/** The bytes node's HTTP/2 client sends for REQUESTS unary gRPC calls with this authority. */
async function record(authority: (port: number) => string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let sock: net.Socket | undefined;
  const srv = await listen((s) => { sock = s; s.write(EMPTY_SETTINGS); s.on('data', (d: Buffer) => chunks.push(d)); });
  const client = http2.connect(`http://127.0.0.1:${srv.port}`, { peerMaxConcurrentStreams: REQUESTS + 1 });
  await new Promise<void>((r) => client.once('remoteSettings', () => r()));
  const body = Buffer.alloc(20, 1);
  for (let i = 0; i < REQUESTS; i++) {
    const st = client.request({
      ':method': 'POST', ':path': '/etcdserverpb.KV/Range', ':authority': authority(srv.port),
      'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '4999m', 'user-agent': 'grpc-go/1.26.0',
    }, { endStream: false });
    st.on('error', () => {});
    st.end(body);
    // Let the client flush in batches, as a busy connection would.
    if (i % 200 === 199) await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 300));
  client.destroy();
  sock?.destroy();
  srv.close();
  return Buffer.concat(chunks);
}

/** Replays `bytes` into a listener whose sockets go through `gate` (or not), CPU µs of this process. */
async function replay(bytes: Buffer, gated: boolean): Promise<number> {
  let done!: () => void;
  const finished = new Promise<void>((r) => { done = r; });
  const drain = (d: Duplex | net.Socket): void => { d.on('data', () => {}); d.once('end', done); d.once('close', done); d.resume(); };
  const srv = await listen((s) => {
    if (!gated) { drain(s); return; }
    // listener.ts sniffs the preface first and puts it back; do the same.
    s.once('readable', () => {
      const head = s.read(H2_PREFACE.length) as Buffer | null;
      if (head) s.unshift(head);
      void h2Gate(s, { decideAfterMs: 5000 }).then((conn) => (conn ? drain(conn) : done()));
    });
  });
  const c0 = process.cpuUsage();
  const client = net.connect(srv.port, '127.0.0.1');
  client.on('data', () => {});
  await new Promise<void>((r) => client.once('connect', () => r()));
  for (let off = 0; off < bytes.length; off += 16_384) {
    if (!client.write(bytes.subarray(off, off + 16_384))) await new Promise((r) => client.once('drain', r));
  }
  client.end();
  await finished;
  const c = process.cpuUsage(c0);
  client.destroy();
  srv.close();
  return c.user + c.system;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const plain = await record((p) => `127.0.0.1:${p}`);
const url = await record((p) => `http://127.0.0.1:${p}`);
const runs = { base: [] as number[], native: [] as number[], baseUrl: [] as number[], shim: [] as number[] };
await replay(plain, true); // warm up the JIT on both paths
await replay(url, true);
for (let i = 0; i < REPEAT; i++) {
  runs.base.push(await replay(plain, false));
  runs.native.push(await replay(plain, true));
  runs.baseUrl.push(await replay(url, false));
  runs.shim.push(await replay(url, true));
}
const per = (x: number): string => (x / REQUESTS).toFixed(2);
const nativeCost = median(runs.native) - median(runs.base);
const shimCost = median(runs.shim) - median(runs.baseUrl);
console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ${REQUESTS} requests per connection, median of ${REPEAT}`);
console.log(`recorded bytes: plain ${plain.length}, url ${url.length} (${(plain.length / REQUESTS).toFixed(1)} and ${(url.length / REQUESTS).toFixed(1)} per request)`);
console.log(`CPU µs per request: discard only ${per(median(runs.base))}; gate, native hand-off ${per(median(runs.native))} (+${per(nativeCost)}); gate, shim ${per(median(runs.shim))} (+${per(shimCost)} over discarding the same bytes)`);
