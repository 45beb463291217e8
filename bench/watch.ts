/**
 * Watch benchmark: put -> event latency (idle and under a steady write rate, on one instance and
 * from one pgetcd instance to another), fan-out of one write to many watchers, and memory per
 * watch; the same workload against a fresh etcd when `etcd` is on PATH, side by side.
 *
 *   node --import tsx bench/watch.ts [--watchers 10000] [--rate 1000] [--seconds 5]
 *        [--samples 300] [--keys 0] [--burst 10000] [--burst-writers 50] [--only pgetcd|etcd]
 *        [--database-url URL] [--quick]
 *
 * --keys N first stores N keys (256-byte values) on each fresh server, so that the server RSS
 * row shows the memory of N keys and --watchers watchers together (issue #7's memory target:
 * --keys 100000 with 10,000 watchers).
 * --burst N: N puts as fast as --burst-writers closed-loop writers (over 10 connections) can send
 * them, put->event latency of each at one prefix watcher (the performance issue's row: 10,000
 * writes from 50 writers, watched on the other instance: the "pgetcd A->B" column).
 *   node --import tsx bench/watch.ts --endpoints host:port[,host:port]   (an already running
 *        server: what `npm run bench -- watch` does; small sizes unless --full)
 *
 * pgetcd runs as child processes (two instances on one database) on an embedded PostgreSQL in a
 * temporary folder, or on --database-url / PGETCD_BENCH_DATABASE_URL. etcd runs on
 * 127.0.0.1:23791 (peer 23801) in a temporary folder. The load generator and the watchers are
 * this process (grpc-js, our .proto), the same for both servers. Nothing here asserts a speed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { App } from '../src/app.ts';
import { DEFAULTS } from '../src/config.ts';
import { EmbeddedPostgres } from '../src/db/embedded.ts';
import { targetToUrl } from '../src/db/target.ts';
import { createLogger } from '../src/log.ts';
import { loadEtcdProto } from '../src/server/proto.ts';
import { serverEnv } from './targets.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ETCD_CLIENT_PORT = 23791;
const ETCD_PEER_PORT = 23801;

const { values: args } = parseArgs({
  options: {
    'endpoints': { type: 'string' }, 'watchers': { type: 'string' }, 'rate': { type: 'string' },
    'seconds': { type: 'string' }, 'samples': { type: 'string' }, 'only': { type: 'string' },
    'database-url': { type: 'string' }, 'quick': { type: 'boolean' }, 'full': { type: 'boolean' },
    'keys': { type: 'string' }, 'burst': { type: 'string' }, 'burst-writers': { type: 'string' },
    'help': { type: 'boolean', short: 'h' },
  },
  strict: false,
  allowPositionals: true,
});

if (args.help) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
  process.exit(0);
}

const given = (typeof args.endpoints === 'string' ? args.endpoints : process.env.PGETCD_BENCH_ENDPOINTS ?? '').split(',').filter(Boolean);
const quick = !!args.quick || (given.length > 0 && !args.full);
const num = (name: string, def: number, small: number): number => {
  const v = args[name];
  return typeof v === 'string' ? Number(v) : quick ? small : def;
};
const WATCHERS = num('watchers', 10_000, 1000);
const RATE = num('rate', 1000, 200);
const SECONDS = num('seconds', 5, 2);
const SAMPLES = num('samples', 300, 50);
const FANOUT_ROUNDS = quick ? 3 : 5;
const KEYS = num('keys', 0, 0);
const BURST = num('burst', 10_000, 1000);
const BURST_WRITERS = num('burst-writers', 50, 10);
const WATCHERS_PER_STREAM = 100;

const note = (m: string): void => { process.stderr.write(`watch-bench: ${m}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const B = (s: string): Buffer => Buffer.from(s);

// --- clients ---------------------------------------------------------------------------

const proto = loadEtcdProto();
const CHANNEL_OPTS = { 'grpc.max_receive_message_length': -1, 'grpc.use_local_subchannel_pool': 1 };

interface Conn {
  kv: grpc.Client;
  watch: grpc.Client;
  close(): void;
}

let connSeq = 0;
function connect(endpoint: string): Conn {
  // A distinct option value gives each Conn its own HTTP/2 connection.
  const opts = { ...CHANNEL_OPTS, 'grpc.primary_user_agent': `watch-bench-${connSeq++}` };
  const creds = grpc.credentials.createInsecure();
  const kv = new proto.clients.KV(endpoint, creds, opts);
  const watch = new proto.clients.Watch(endpoint, creds, opts);
  return { kv, watch, close: () => { kv.close(); watch.close(); } };
}

function put(c: Conn, key: string, value: string): Promise<number> {
  return new Promise((resolve, reject) => {
    (c.kv as unknown as { Put(r: object, cb: (e: Error | null, r: { header: { revision: string } }) => void): void })
      .Put({ key: B(key), value: B(value) }, (e, r) => (e ? reject(e) : resolve(Number(r.header.revision))));
  });
}

interface WatchEvent { kv: { key: Buffer; value: Buffer; mod_revision: string } }
interface WatchResponse { watch_id: string; created: boolean; canceled: boolean; events: WatchEvent[] }

/** A Watch stream; `onEvent` sees every event with its arrival time. */
class Stream {
  readonly call: grpc.ClientDuplexStream<object, WatchResponse>;
  private created = 0;
  private wantCreated = 0;
  private onCreated: (() => void) | undefined;

  constructor(c: Conn, onEvent: (e: WatchEvent, at: number) => void) {
    this.call = (c.watch as unknown as { Watch(): grpc.ClientDuplexStream<object, WatchResponse> }).Watch();
    this.call.on('data', (r: WatchResponse) => {
      if (r.created) {
        this.created++;
        if (this.created === this.wantCreated) this.onCreated?.();
        return;
      }
      if (r.canceled) throw new Error(`watch canceled: ${JSON.stringify(r)}`);
      const at = performance.now();
      for (const e of r.events) onEvent(e, at);
    });
    this.call.on('error', (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) note(`stream error: ${e.message}`);
    });
  }

  /** Creates watches and resolves once all are created. */
  async watch(reqs: object[]): Promise<void> {
    this.wantCreated += reqs.length;
    const done = new Promise<void>((resolve) => { this.onCreated = resolve; });
    for (const r of reqs) this.call.write({ create_request: r });
    if (this.created < this.wantCreated) await done;
  }

  close(): void {
    this.call.cancel();
  }
}

const prefixEnd = (p: string): Buffer => {
  const b = B(p);
  b[b.length - 1]! += 1;
  return b;
};

// --- statistics --------------------------------------------------------------------------

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

const median = (xs: number[]): number => pct(xs, 50);

// --- workloads -------------------------------------------------------------------------------

interface Target {
  name: string;
  /** Writes go here... */
  write: string;
  /** ...and watchers listen here. */
  watch: string;
  /** The process serving `watch` (for memory per watch). */
  watchPid: number | undefined;
}

interface Figures {
  idleP50: number; idleP99: number; idleAckP50: number; idleAckP99: number;
  loadP50: number; loadP99: number; loadPutP50: number; loadPutP99: number; loadRate: number; loadEvents: number; loadMissing: number;
  burstRate: number; burstP50: number; burstP99: number; burstMissing: number;
  fanAll: number; fanP50: number; fanP99: number;
  memPerWatch: number | undefined;
  /** Server RSS with KEYS keys stored and WATCHERS watchers open (bytes). */
  rssLoaded: number | undefined;
  heapPerWatch: number;
}

/** Stores n keys of 256 bytes under /wbench-keys/, 64 puts at a time. */
async function preload(t: Target, n: number): Promise<void> {
  const conns = Array.from({ length: 8 }, () => connect(t.write));
  const value = 'v'.repeat(256);
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async (_, w) => {
    for (let i = next++; i < n; i = next++) await put(conns[w % conns.length]!, `/wbench-keys/${String(i).padStart(12, '0')}`, value);
  }));
  for (const c of conns) c.close();
}

let runSeq = 0;

/** Sequential puts, one at a time: time from sending a put to its event at the watcher. */
async function idleLatency(t: Target, samples: number): Promise<{ lat: number[]; afterAck: number[] }> {
  const prefix = `/wbench/${process.pid}/${runSeq++}/idle/`;
  const w = connect(t.watch);
  const c = t.write === t.watch ? w : connect(t.write);
  const waiting = new Map<string, (at: number) => void>();
  const s = new Stream(w, (e, at) => waiting.get(e.kv.value.toString())?.(at));
  await s.watch([{ key: B(prefix), range_end: prefixEnd(prefix) }]);
  const out: number[] = [];
  const afterAck: number[] = [];
  try {
    for (let i = 0; i < samples + 10; i++) {
      const id = String(i);
      const arrived = new Promise<number>((resolve) => waiting.set(id, resolve));
      const t0 = performance.now();
      await put(c, `${prefix}k`, id);
      const acked = performance.now();
      const at = await arrived;
      waiting.delete(id);
      if (i >= 10) { // the first few warm up connections and plans
        out.push(at - t0);
        afterAck.push(Math.max(0, at - acked));
      }
      await sleep(5);
    }
  } finally {
    s.close();
    w.close();
    if (c !== w) c.close();
  }
  return { lat: out, afterAck };
}

/** Open-loop puts at `rate`/s for `seconds`; latency of every event at one prefix watcher. */
async function loadLatency(t: Target, rate: number, seconds: number): Promise<{ lat: number[]; putLat: number[]; achieved: number; missing: number }> {
  const prefix = `/wbench/${process.pid}/${runSeq++}/load/`;
  const writers = Array.from({ length: 4 }, () => connect(t.write));
  const w = connect(t.watch);
  const sent = new Map<string, number>();
  const lat: number[] = [];
  const putLat: number[] = [];
  const s = new Stream(w, (e, at) => {
    const t0 = sent.get(e.kv.value.toString());
    if (t0 !== undefined) lat.push(at - t0);
  });
  await s.watch([{ key: B(prefix), range_end: prefixEnd(prefix) }]);
  let seq = 0;
  const start = performance.now();
  const tickMs = 10;
  const pending: Array<Promise<unknown>> = [];
  while (performance.now() - start < seconds * 1000) {
    // Open loop: as many puts as the elapsed time calls for, whatever the replies do.
    const due = Math.floor((performance.now() - start) * rate / 1000);
    while (seq < due) {
      const id = String(seq++);
      const c = writers[seq % writers.length]!;
      const t0 = performance.now();
      sent.set(id, t0);
      pending.push(put(c, `${prefix}${seq % 1000}`, id).then(() => { putLat.push(performance.now() - t0); }));
    }
    const next = start + Math.ceil((performance.now() - start + 0.001) / tickMs) * tickMs;
    await sleep(Math.max(0, next - performance.now()));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  const until = performance.now() + 10_000;
  while (lat.length < seq && performance.now() < until) await sleep(20);
  s.close();
  w.close();
  for (const c of writers) c.close();
  return { lat, putLat, achieved: seq / elapsed, missing: seq - lat.length };
}

/**
 * A burst: n puts from `writers` closed-loop writers (each sends its next put when the last one
 * is answered) over 10 connections; the latency from sending each put to its event at one
 * prefix watcher.
 */
async function burstLatency(t: Target, n: number, writers: number): Promise<{ lat: number[]; rate: number; missing: number }> {
  const prefix = `/wbench/${process.pid}/${runSeq++}/burst/`;
  const conns = Array.from({ length: 10 }, () => connect(t.write));
  const w = connect(t.watch);
  const sent: number[] = new Array<number>(n);
  const lat: number[] = [];
  let allIn: () => void = () => undefined;
  const all = new Promise<void>((resolve) => { allIn = resolve; });
  const s = new Stream(w, (e, at) => {
    const t0 = sent[Number(e.kv.value.toString())];
    if (t0 === undefined) return;
    lat.push(at - t0);
    if (lat.length === n) allIn();
  });
  await s.watch([{ key: B(prefix), range_end: prefixEnd(prefix) }]);
  let next = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: writers }, async (_, i) => {
    const c = conns[i % conns.length]!;
    for (let j = next++; j < n; j = next++) {
      sent[j] = performance.now();
      await put(c, `${prefix}${j % 1000}`, String(j));
    }
  }));
  const rate = n / ((performance.now() - start) / 1000);
  await Promise.race([all, sleep(15_000)]);
  s.close();
  w.close();
  for (const c of conns) c.close();
  return { lat, rate, missing: n - lat.length };
}

/** RSS of a process in bytes (Linux). */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** n watchers on one key; each round one put, timed until every watcher has its event. */
async function fanOut(t: Target, n: number, rounds: number): Promise<{ all: number[]; arrivals: number[]; memPerWatch: number | undefined; rssLoaded: number | undefined }> {
  const key = `/wbench/${process.pid}/${runSeq++}/fan`;
  const conns = Array.from({ length: 4 }, () => connect(t.watch));
  const writer = connect(t.write);
  await put(writer, `${key}-warm`, 'x');
  const rss0 = t.watchPid ? rss(t.watchPid) : undefined;
  let got = 0;
  let t0 = 0;
  let done: (() => void) | undefined;
  const arrivals: number[] = [];
  const streams: Stream[] = [];
  const per = Math.min(WATCHERS_PER_STREAM, n);
  for (let i = 0; i < n; i += per) {
    const s = new Stream(conns[streams.length % conns.length]!, (_e, at) => {
      arrivals.push(at - t0);
      if (++got === n) done?.();
    });
    streams.push(s);
  }
  await Promise.all(streams.map((s, i) => s.watch(Array.from({ length: Math.min(per, n - i * per) }, () => ({ key: B(key) })))));
  await sleep(500);
  const rss1 = t.watchPid ? rss(t.watchPid) : undefined;
  const all: number[] = [];
  const roundArrivals: number[] = [];
  for (let r = 0; r < rounds; r++) {
    got = 0;
    arrivals.length = 0;
    const finished = new Promise<void>((resolve) => { done = resolve; });
    t0 = performance.now();
    await put(writer, key, String(r));
    await finished;
    all.push(performance.now() - t0);
    roundArrivals.push(...arrivals);
    await sleep(200);
  }
  for (const s of streams) s.close();
  for (const c of conns) c.close();
  writer.close();
  const memPerWatch = rss0 !== undefined && rss1 !== undefined ? (rss1 - rss0) / n : undefined;
  return { all, arrivals: roundArrivals, memPerWatch, rssLoaded: rss1 };
}

async function measure(t: Target, withFanOut: boolean): Promise<Partial<Figures>> {
  const f: Partial<Figures> = {};
  if (withFanOut) {
    if (KEYS > 0) {
      note(`${t.name}: storing ${KEYS} keys`);
      await preload(t, KEYS);
    }
    // First, on a fresh server, so that its memory growth is the watchers'.
    note(`${t.name}: fan-out of one put to ${WATCHERS} watchers (${FANOUT_ROUNDS} rounds)`);
    const fo = await fanOut(t, WATCHERS, FANOUT_ROUNDS);
    Object.assign(f, { fanAll: median(fo.all), fanP50: median(fo.arrivals), fanP99: pct(fo.arrivals, 99), memPerWatch: fo.memPerWatch, rssLoaded: fo.rssLoaded });
  }
  note(`${t.name}: idle put->event latency (${SAMPLES} sequential puts)`);
  const idle = await idleLatency(t, SAMPLES);
  note(`${t.name}: latency under ${RATE} puts/s for ${SECONDS}s`);
  const load = await loadLatency(t, RATE, SECONDS);
  Object.assign(f, {
    idleP50: median(idle.lat), idleP99: pct(idle.lat, 99), idleAckP50: median(idle.afterAck), idleAckP99: pct(idle.afterAck, 99),
    loadP50: median(load.lat), loadP99: pct(load.lat, 99), loadPutP50: median(load.putLat), loadPutP99: pct(load.putLat, 99),
    loadRate: load.achieved, loadEvents: load.lat.length, loadMissing: load.missing,
  });
  if (BURST > 0) {
    note(`${t.name}: burst of ${BURST} puts from ${BURST_WRITERS} writers`);
    const b = await burstLatency(t, BURST, BURST_WRITERS);
    Object.assign(f, { burstRate: b.rate, burstP50: median(b.lat), burstP99: pct(b.lat, 99), burstMissing: b.missing });
  }
  return f;
}

/** Client side of heapPerWatch, in a worker thread (a heap of its own), plain JS. */
const HEAP_CLIENT = `
const { workerData, parentPort } = require('node:worker_threads');
const grpc = require(workerData.grpc);
const loader = require(workerData.loader);
const def = loader.loadSync(['etcdserverpb/rpc.proto'], { keepCase: true, longs: String, enums: Number, defaults: true, oneofs: true, includeDirs: [workerData.protoDir] });
const Watch = grpc.loadPackageDefinition(def).etcdserverpb.Watch;
const c = new Watch(workerData.ep, grpc.credentials.createInsecure());
let created = 0;
for (let i = 0; i < workerData.n / 100; i++) {
  const s = c.Watch();
  s.on('data', (r) => { if (r.created && ++created === workerData.n) parentPort.postMessage('created'); });
  for (let j = 0; j < 100 && i * 100 + j < workerData.n; j++) {
    const k = '/registry/pods/ns' + i + '/p' + j;
    s.write({ create_request: { key: Buffer.from(k + '/'), range_end: Buffer.from(k + '0') } });
  }
}
`;

/**
 * JS heap retained per watch by pgetcd: an instance in this process (its own gRPC port, same
 * database), n prefix watchers (100 per stream) created from a worker thread, heap compared
 * after full GCs. Includes the gRPC stream objects, 1/100 of a stream per watch.
 */
async function heapPerWatch(databaseUrl: string, n: number): Promise<number> {
  v8.setFlagsFromString('--expose_gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const heap = (): number => { gc(); gc(); return process.memoryUsage().heapUsed; };
  const app = await App.start({ ...DEFAULTS, endpoint: databaseUrl, listenClientUrls: ['http://127.0.0.1:0'], advertiseClientUrls: ['http://127.0.0.1:0'], name: 'wbench-heap' }, createLogger('warn'));
  try {
    const h0 = heap();
    const req = (m: string): string => path.join(ROOT, 'node_modules', m);
    const worker = new Worker(HEAP_CLIENT, {
      eval: true,
      workerData: { ep: `127.0.0.1:${app.ports[0]}`, n, grpc: req('@grpc/grpc-js'), loader: req('@grpc/proto-loader'), protoDir: path.join(ROOT, 'proto') },
    });
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (m) => { if (m === 'created') resolve(); });
      worker.on('error', reject);
    });
    await sleep(500);
    const h1 = heap();
    await worker.terminate();
    return (h1 - h0) / n;
  } finally {
    await app.stop();
  }
}

// --- servers ---------------------------------------------------------------------------------

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

async function spawnReady(file: string, argv: string[], ready: (out: string) => boolean, timeoutMs: number): Promise<ChildProcess> {
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: serverEnv() });
  let out = '';
  const keep = (d: Buffer): void => { out = (out + d.toString()).slice(-20_000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${file} did not start:\n${out}`)); }, timeoutMs);
    const check = (): void => { if (ready(out)) { clearTimeout(timer); resolve(); } };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${file} exited ${code}:\n${out}`)); });
  });
  child.removeAllListeners('exit');
  return child;
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(t);
}

interface Running { targets: Target[]; databaseUrl?: string; stop(): Promise<void> }

async function startPgetcd(): Promise<Running> {
  const stops: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => { for (const s of stops.reverse()) await s().catch(() => undefined); };
  try {
    let url = typeof args['database-url'] === 'string' ? args['database-url'] : process.env.PGETCD_BENCH_DATABASE_URL;
    if (!url) {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-wbench-'));
      fs.chmodSync(tmp, 0o755);
      const pg = new EmbeddedPostgres({ dataDir: path.join(tmp, 'db'), port: 5432, tcp: false, log: createLogger('warn') });
      note('starting an embedded PostgreSQL');
      url = targetToUrl(await pg.start());
      stops.push(async () => { await pg.stop(); fs.rmSync(tmp, { recursive: true, force: true }); });
    }
    const eps: string[] = [];
    const pids: number[] = [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      note(`starting pgetcd ${i + 1} on 127.0.0.1:${port}`);
      const child = await spawnReady(process.execPath, [path.join(ROOT, 'bin', 'pgetcd.js'), '--endpoint', url,
        '--listen-client-urls', `http://127.0.0.1:${port}`, '--listen-metrics-urls', '', '--name', `wbench${i + 1}`, '--log-level', 'info'],
      (out) => out.includes('serving etcd gRPC'), 120_000);
      stops.push(() => stopChild(child));
      eps.push(`127.0.0.1:${port}`);
      pids.push(child.pid!);
    }
    return {
      databaseUrl: url,
      targets: [
        { name: 'pgetcd', write: eps[0]!, watch: eps[0]!, watchPid: pids[0] },
        { name: 'pgetcd A->B', write: eps[0]!, watch: eps[1]!, watchPid: pids[1] },
      ],
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function findEtcd(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const f = path.join(dir || '.', 'etcd');
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return f;
    } catch { /* not here */ }
  }
  return undefined;
}

async function startEtcd(bin: string): Promise<Running> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-wbench-etcd-'));
  const client = `http://127.0.0.1:${ETCD_CLIENT_PORT}`;
  const peer = `http://127.0.0.1:${ETCD_PEER_PORT}`;
  note(`starting etcd on 127.0.0.1:${ETCD_CLIENT_PORT}`);
  const child = await spawnReady(bin, ['--name', 'wbench', '--data-dir', path.join(tmp, 'data'),
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `wbench=${peer}`],
  (out) => /ready to serve client requests|serving insecure client requests/.test(out), 60_000);
  const ep = `127.0.0.1:${ETCD_CLIENT_PORT}`;
  return {
    targets: [{ name: 'etcd', write: ep, watch: ep, watchPid: child.pid }],
    stop: async () => { await stopChild(child); fs.rmSync(tmp, { recursive: true, force: true }); },
  };
}

// --- report ----------------------------------------------------------------------------------

const ROWS: Array<[keyof Figures, string, (x: number) => string]> = [
  ['idleP50', 'idle put->event p50 (ms)', (x) => x.toFixed(2)],
  ['idleP99', 'idle put->event p99 (ms)', (x) => x.toFixed(2)],
  ['idleAckP50', 'idle put reply->event p50 (ms)', (x) => x.toFixed(2)],
  ['idleAckP99', 'idle put reply->event p99 (ms)', (x) => x.toFixed(2)],
  ['loadRate', 'load: puts/s achieved', (x) => x.toFixed(0)],
  ['loadP50', 'load: put->event p50 (ms)', (x) => x.toFixed(2)],
  ['loadP99', 'load: put->event p99 (ms)', (x) => x.toFixed(2)],
  ['loadPutP50', 'load: put reply p50 (ms)', (x) => x.toFixed(2)],
  ['loadPutP99', 'load: put reply p99 (ms)', (x) => x.toFixed(2)],
  ['loadMissing', 'load: events missing', (x) => x.toFixed(0)],
  ['burstRate', `burst of ${BURST} puts from ${BURST_WRITERS} writers: puts/s`, (x) => x.toFixed(0)],
  ['burstP50', 'burst: put->event p50 (ms)', (x) => x.toFixed(2)],
  ['burstP99', 'burst: put->event p99 (ms)', (x) => x.toFixed(2)],
  ['burstMissing', 'burst: events missing', (x) => x.toFixed(0)],
  ['fanAll', `fan-out to ${WATCHERS}: all delivered (ms, median)`, (x) => x.toFixed(1)],
  ['fanP50', 'fan-out: per-watcher arrival p50 (ms)', (x) => x.toFixed(1)],
  ['fanP99', 'fan-out: per-watcher arrival p99 (ms)', (x) => x.toFixed(1)],
  ['memPerWatch', 'memory per watch (bytes of server RSS)', (x) => x.toFixed(0)],
  ['rssLoaded', `server RSS, ${KEYS} keys + watchers (MiB)`, (x) => (x / 1048576).toFixed(0)],
  ['heapPerWatch', 'JS heap per watch (bytes, in-process pgetcd)', (x) => x.toFixed(0)],
];

function report(results: Array<[string, Partial<Figures>]>): void {
  const names = results.map(([n]) => n);
  const pg = results.find(([n]) => n === 'pgetcd')?.[1];
  const etcd = results.find(([n]) => n === 'etcd')?.[1];
  const header = ['metric', ...names, ...(pg && etcd ? ['pgetcd/etcd'] : [])];
  const rows: string[][] = [header];
  for (const [k, label, fmt] of ROWS) {
    const cells = results.map(([, f]) => (f[k] === undefined || Number.isNaN(f[k]) ? '-' : fmt(f[k]!)));
    if (cells.every((c) => c === '-')) continue;
    const ratio = pg && etcd && pg[k] !== undefined && etcd[k] !== undefined && etcd[k] !== 0 && k !== 'loadMissing' && k !== 'burstMissing'
      ? `${(pg[k]! / etcd[k]!).toFixed(2)}x` : '-';
    rows.push([label, ...cells, ...(pg && etcd ? [ratio] : [])]);
  }
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log(`\nwatch benchmark (${os.cpus().length} cores; ${WATCHERS} watchers, ${RATE} puts/s for ${SECONDS}s, ${SAMPLES} idle samples)`);
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}

// --- main ----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const results: Array<[string, Partial<Figures>]> = [];
  if (given.length > 0) {
    // An already running server (npm run bench -- watch): its first endpoint, and the second
    // as the watching side when there are two.
    const target = process.env.PGETCD_BENCH_TARGET ?? 'server';
    const ts: Target[] = [{ name: target, write: given[0]!, watch: given[0]!, watchPid: undefined }];
    if (given[1]) ts.push({ name: `${target} A->B`, write: given[0]!, watch: given[1], watchPid: undefined });
    for (const t of ts) results.push([t.name, await measure(t, t === ts[0])]);
    report(results);
    return;
  }
  const only = typeof args.only === 'string' ? args.only : undefined;
  if (only !== 'etcd') {
    const pg = await startPgetcd();
    try {
      for (const t of pg.targets) results.push([t.name, await measure(t, t.name === 'pgetcd')]);
      note(`pgetcd: JS heap per watch (${WATCHERS} prefix watchers, in this process)`);
      results[0]![1].heapPerWatch = await heapPerWatch(pg.databaseUrl!, WATCHERS);
    } finally {
      await pg.stop();
    }
  }
  const bin = only === 'pgetcd' ? undefined : findEtcd();
  if (bin) {
    const e = await startEtcd(bin);
    try {
      for (const t of e.targets) results.push([t.name, await measure(t, true)]);
    } finally {
      await e.stop();
    }
  } else if (only !== 'pgetcd') {
    note('etcd is not on PATH: pgetcd only');
  }
  report(results);
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
