/**
 * What TLS costs on the client port: put throughput at --clients closed-loop clients and a whole
 * list of --keys keys, over http:// and https:// of the SAME server process (pgetcd and etcd each
 * listen on both), pgetcd and etcd side by side. One server runs at a time; the plain and TLS
 * rounds alternate (--repeat times each) so drift in machine load hits both alike.
 *
 *   flock /tmp/pgetcd-bench.lock node --import tsx bench/tls.ts [--clients 100] [--conns 10]
 *     [--seconds 8] [--keys 10000] [--list-clients 4] [--repeat 2] [--etcd PATH]
 *
 * Certificates: a throwaway CA and a server certificate for 127.0.0.1, made with openssl. The
 * client (node:http2, bench/grpc.ts) verifies the server against that CA; no client certificates.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { issue, makeCa } from '../test/helpers/certs.ts';
import { PATHS, Pool } from './grpc.ts';
import { prefixEnd, putRequest, rangeRequest, scanRange } from './pb.ts';
import { ROOT, serverEnv } from './targets.ts';

const { values: o } = parseArgs({
  options: {
    clients: { type: 'string', default: '100' }, conns: { type: 'string', default: '10' }, seconds: { type: 'string', default: '8' },
    keys: { type: 'string', default: '10000' }, 'list-clients': { type: 'string', default: '4' }, repeat: { type: 'string', default: '2' },
    etcd: { type: 'string', default: 'etcd' }, 'val-size': { type: 'string', default: '256' },
  },
});
const CLIENTS = Number(o.clients);
const CONNS = Number(o.conns);
const SECONDS = Number(o.seconds);
const KEYS = Number(o.keys);
const LIST_CLIENTS = Number(o['list-clients']);
const REPEAT = Number(o.repeat);
const VALUE = Buffer.alloc(Number(o['val-size']), 'v');

const note = (m: string): void => { process.stderr.write(`[tls-bench] ${m}\n`); };

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

interface Server { name: string; plain: string; tls: string; child: ChildProcess; stop(): Promise<void> }

function spawnLogged(file: string, args: string[]): { child: ChildProcess; out: () => string } {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: serverEnv() });
  let out = '';
  const keep = (d: Buffer): void => { out = (out + d.toString()).slice(-100_000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, out: () => out };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await once(child, 'exit');
  clearTimeout(t);
}

/** Waits until a Range answers on both URLs. */
async function waitReady(s: Server, out: () => string): Promise<void> {
  const deadline = Date.now() + 180_000;
  for (const ep of [s.plain, s.tls]) {
    for (;;) {
      if (s.child.exitCode !== null) throw new Error(`${s.name} exited:\n${out().slice(-3000)}`);
      const pool = new Pool([ep], 1);
      try {
        await pool.ready(2000);
        await pool.conn(0).unary(PATHS.range, rangeRequest(Buffer.from('ready')), 2000);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`${s.name} did not answer on ${ep}: ${(err as Error).message}\n${out().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 300));
      } finally {
        pool.close();
      }
    }
  }
}

async function startPgetcd(tmp: string, cert: string, key: string): Promise<Server> {
  const [a, b, pg] = [await freePort(), await freePort(), await freePort()];
  const p = spawnLogged(process.execPath, [path.join(ROOT, 'bin', 'pgetcd.js'), '--data-dir', path.join(tmp, 'pgetcd'), '--embedded-port', String(pg),
    '--listen-client-urls', `http://127.0.0.1:${a},https://127.0.0.1:${b}`, '--cert-file', cert, '--key-file', key,
    '--listen-metrics-urls', '', '--log-level', 'warn', '--warning-apply-duration', '0']);
  const s: Server = { name: 'pgetcd', plain: `127.0.0.1:${a}`, tls: `https://127.0.0.1:${b}`, child: p.child, stop: () => stopChild(p.child) };
  await waitReady(s, p.out);
  return s;
}

async function startEtcd(tmp: string, cert: string, key: string): Promise<Server> {
  const [a, b, peer] = [await freePort(), await freePort(), await freePort()];
  const peerUrl = `http://127.0.0.1:${peer}`;
  const p = spawnLogged(o.etcd!, ['--name', 'bench', '--data-dir', path.join(tmp, 'etcd'),
    '--listen-client-urls', `http://127.0.0.1:${a},https://127.0.0.1:${b}`, '--advertise-client-urls', `http://127.0.0.1:${a}`,
    '--cert-file', cert, '--key-file', key,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `bench=${peerUrl}`,
    '--quota-backend-bytes', String(8 * 1024 ** 3), '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'warn']);
  const s: Server = { name: 'etcd', plain: `127.0.0.1:${a}`, tls: `https://127.0.0.1:${b}`, child: p.child, stop: () => stopChild(p.child) };
  await waitReady(s, p.out);
  return s;
}

/** Closed-loop clients for SECONDS; requests per second. */
async function closedLoop(pool: Pool, clients: number, one: (client: number, i: number) => Promise<void>): Promise<number> {
  const until = Date.now() + SECONDS * 1000;
  let done = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    for (let i = 0; Date.now() < until; i++) {
      await one(c, i);
      done++;
    }
  }));
  return done / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function putRound(ep: string, round: string): Promise<number> {
  const pool = new Pool([ep], CONNS);
  try {
    await pool.ready();
    return await closedLoop(pool, CLIENTS, async (c, i) => {
      await pool.conn(c).unary(PATHS.put, putRequest(Buffer.from(`/bench/tls-put/${round}/${c}/${i}`), VALUE));
    });
  } finally {
    pool.close();
  }
}

const LIST_PREFIX = Buffer.from('/bench/tls-list/');

async function load(ep: string): Promise<void> {
  const pool = new Pool([ep], 4);
  try {
    await pool.ready();
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async (_, c) => {
      for (let i = next++; i < KEYS; i = next++) {
        await pool.conn(c).unary(PATHS.put, putRequest(Buffer.from(`${LIST_PREFIX.toString()}${String(i).padStart(8, '0')}`), VALUE));
      }
    }));
  } finally {
    pool.close();
  }
}

async function listRound(ep: string): Promise<number> {
  const pool = new Pool([ep], LIST_CLIENTS);
  const req = rangeRequest(LIST_PREFIX, { rangeEnd: prefixEnd(LIST_PREFIX) });
  try {
    await pool.ready();
    return await closedLoop(pool, LIST_CLIENTS, async (c) => {
      const r = scanRange(await pool.conn(c).unary(PATHS.range, req, 120_000));
      if (r.kvs !== KEYS) throw new Error(`list returned ${r.kvs} keys, not ${KEYS}`);
    });
  } finally {
    pool.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-bench-tls-'));
  fs.chmodSync(tmp, 0o755);
  const ca = makeCa(path.join(tmp, 'ca'), 'ca');
  const server = issue(ca, 'server', '127.0.0.1', ['IP:127.0.0.1', 'DNS:localhost']);
  process.env.PGETCD_BENCH_CA_FILE = ca.cert;
  const results: Record<string, Record<string, number[]>> = {};
  let etcdVersion = 'etcd not found';
  try {
    etcdVersion = execFileSync(o.etcd!, ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch { /* pgetcd only */ }
  const servers: Array<[string, () => Promise<Server>]> = [['pgetcd', () => startPgetcd(tmp, server.cert, server.key)]];
  if (etcdVersion !== 'etcd not found') servers.push(['etcd', () => startEtcd(tmp, server.cert, server.key)]);
  try {
    for (const [name, start] of servers) {
      note(`starting ${name}`);
      const s = await start();
      const r: Record<string, number[]> = { 'put http': [], 'put https': [], 'list http': [], 'list https': [] };
      results[name] = r;
      try {
        await putRound(s.plain, 'warm');
        for (let i = 0; i < REPEAT; i++) {
          for (const [scheme, ep] of [['http', s.plain], ['https', s.tls]] as const) {
            const v = await putRound(ep, `${scheme}${i}`);
            r[`put ${scheme}`]!.push(v);
            note(`${name} put ${scheme}: ${v.toFixed(0)}/s`);
          }
        }
        note(`${name}: loading ${KEYS} keys`);
        await load(s.plain);
        await listRound(s.plain);
        for (let i = 0; i < REPEAT; i++) {
          for (const [scheme, ep] of [['http', s.plain], ['https', s.tls]] as const) {
            const v = await listRound(ep);
            r[`list ${scheme}`]!.push(v);
            note(`${name} list ${scheme}: ${v.toFixed(2)}/s`);
          }
        }
      } finally {
        await s.stop();
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const fmt = (xs: number[] | undefined): string => (xs && xs.length ? `${median(xs).toFixed(median(xs) < 100 ? 2 : 0)} (${xs.map((x) => x.toFixed(x < 100 ? 2 : 0)).join(', ')})` : '-');
  const ratio = (a: number[] | undefined, b: number[] | undefined): string => (a?.length && b?.length ? (median(a) / median(b)).toFixed(2) : '-');
  const p = results.pgetcd;
  const e = results.etcd;
  const lines = [
    `TLS cost, ${os.cpus().length} cores, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at the end; pgetcd vs ${etcdVersion}`,
    `put: ${CLIENTS} clients on ${CONNS} connections, ${VALUE.length}-byte values, ${SECONDS} s rounds; list: the whole prefix of ${KEYS} keys, ${LIST_CLIENTS} clients; medians (every round)`,
    '',
    '| requests/s | pgetcd http | pgetcd https | pgetcd https/http | etcd http | etcd https | etcd https/http | pgetcd/etcd over https |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...['put', 'list'].map((w) => `| ${w} | ${fmt(p?.[`${w} http`])} | ${fmt(p?.[`${w} https`])} | ${ratio(p?.[`${w} https`], p?.[`${w} http`])} | ${fmt(e?.[`${w} http`])} | ${fmt(e?.[`${w} https`])} | ${ratio(e?.[`${w} https`], e?.[`${w} http`])} | ${ratio(p?.[`${w} https`], e?.[`${w} https`])} |`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`tls bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
