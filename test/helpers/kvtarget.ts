import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Config } from '../../src/config.ts';
import { rawClients, type Raw } from './raw.ts';
import { freePort, startServer, type TestServer } from './server.ts';

/**
 * The server a KV semantics test talks to: pgetcd by default. With PGETCD_TEST_AGAINST_ETCD=1
 * (and an `etcd` binary on PATH) the same tests run against a fresh real etcd instead, which is
 * how their expected values were checked. Each target is a fresh etcd on free ports (or on
 * PGETCD_TEST_ETCD_PORTS="client,peer" when set).
 */
export interface KvTarget {
  endpoint: string;
  raw: Raw;
  etcd: Etcd3;
  /** Set when the target is a real etcd: tests skip what only pgetcd can show (SQL, 3.5-only behaviour). */
  isEtcd: boolean;
  /** pgetcd only. */
  server?: TestServer;
  stop(): Promise<void>;
}

export type TargetOptions = Pick<Partial<Config>, 'maxTxnOps' | 'maxRequestBytes'>;

export function againstEtcd(): boolean {
  return process.env.PGETCD_TEST_AGAINST_ETCD === '1';
}

export async function openTarget(opts: TargetOptions = {}): Promise<KvTarget> {
  if (againstEtcd()) return await startEtcd(opts);
  const server = await startServer(opts);
  return wrap(server.endpoint, false, () => server.stop(), server);
}

function wrap(endpoint: string, isEtcd: boolean, stopServer: () => Promise<void>, server?: TestServer): KvTarget {
  const raw = rawClients(endpoint);
  const etcd = new Etcd3({ hosts: endpoint });
  return {
    endpoint, raw, etcd, isEtcd, server,
    stop: async () => {
      etcd.close();
      raw.close();
      await stopServer();
    },
  };
}

/** The etcd binary on PATH, or undefined. */
export function etcdBinary(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir, 'etcd');
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

function findEtcd(): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir, 'etcd');
    if (dir && existsSync(p)) return p;
  }
  throw new Error('PGETCD_TEST_AGAINST_ETCD=1 but no etcd binary on PATH');
}

/** A fresh single-member etcd on a temporary data dir. */
export async function startEtcd(opts: TargetOptions = {}): Promise<KvTarget> {
  const fixed = process.env.PGETCD_TEST_ETCD_PORTS?.split(',').map(Number);
  const [client, peer] = fixed ?? [await freePort(), await freePort()];
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgetcd-kv-etcd-'));
  const clientUrl = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const args = [
    '--data-dir', dir, '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `default=${peerUrl}`,
  ];
  if (opts.maxTxnOps) args.push('--max-txn-ops', String(opts.maxTxnOps));
  if (opts.maxRequestBytes) args.push('--max-request-bytes', String(opts.maxRequestBytes));
  const child: ChildProcess = spawn(findEtcd(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
  const endpoint = `127.0.0.1:${client}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await fs.rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  while (!log.includes('ready to serve client')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`etcd did not start: ${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return wrap(endpoint, true, stop);
}
