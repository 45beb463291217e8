import { once } from 'node:events';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from '../../src/app.ts';
import { DEFAULTS, type Config } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { createTestDatabase } from './db.ts';
import { rawClients, type Raw } from './raw.ts';
import { assertConsistent } from './consistency.ts';

export interface TestServer {
  app: App;
  /** host:port for clients. */
  endpoint: string;
  /** The database URL this server uses (share it to start a second instance). */
  databaseUrl: string;
  stop(): Promise<void>;
}

/** Starts pgetcd in this process on a fresh database (or on `databaseUrl` to share one). */
export async function startServer(opts: Partial<Config> & { databaseUrl?: string } = {}): Promise<TestServer> {
  const databaseUrl = opts.databaseUrl ?? (await createTestDatabase());
  // A real port (not 0) so MemberList advertises an address clients can sync to.
  const url = `http://127.0.0.1:${await freePort()}`;
  const cfg: Config = {
    ...DEFAULTS,
    listenClientUrls: [url],
    advertiseClientUrls: [url],
    // No metrics listener unless a test asks for one: in-process servers would share port 2381.
    listenMetricsUrls: [],
    ...opts,
    endpoint: databaseUrl,
  };
  const log = createLogger(process.env.PGETCD_TEST_LOG_LEVEL ?? 'silent');
  const app = await App.start(cfg, log);
  return { app, endpoint: `127.0.0.1:${app.ports[0]}`, databaseUrl, stop: () => app.stop() };
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ServerProcess {
  child: ChildProcess;
  endpoint: string;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Everything the process wrote to stdout and stderr so far (its log lines). */
  output(): string;
}

/** Starts pgetcd as a child process (for kill -9 and multi-process tests). */
export async function startServerProcess(databaseUrl: string, port: number, extraArgs: string[] = []): Promise<ServerProcess> {
  const child = spawn(process.execPath, [
    path.join(ROOT, 'bin', 'pgetcd.js'), '--endpoint', databaseUrl,
    '--listen-client-urls', `http://127.0.0.1:${port}`, '--name', `p${port}`, '--log-level', 'info',
    '--listen-metrics-urls', '', ...extraArgs,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  await new Promise<void>((resolve, reject) => {
    // Generous: a start on a machine shared by many test runs can take tens of seconds.
    const timer = setTimeout(() => reject(new Error(`pgetcd did not start: ${out}`)), 90_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('serving etcd gRPC')) { clearTimeout(timer); resolve(); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`pgetcd exited with ${code}: ${out}`)); });
  });
  const wait = async (): Promise<void> => { if (child.exitCode === null && child.signalCode === null) await once(child, 'exit'); };
  return {
    child,
    endpoint: `127.0.0.1:${port}`,
    output: () => out,
    stop: async () => { child.kill('SIGTERM'); await wait(); },
    kill: async () => { child.kill('SIGKILL'); await wait(); },
  };
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** Two in-process instances on one fresh database, each with raw gRPC clients. */
export interface ServerPair {
  a: TestServer;
  b: TestServer;
  rawA: Raw;
  rawB: Raw;
  stop(): Promise<void>;
}

export async function startPair(): Promise<ServerPair> {
  const a = await startServer();
  const b = await startServer({ databaseUrl: a.databaseUrl });
  const rawA = rawClients(a.endpoint);
  const rawB = rawClients(b.endpoint);
  return {
    a, b, rawA, rawB,
    // Every two-instance test ends with the store's consistency check.
    stop: async () => {
      try {
        await assertConsistent(a.databaseUrl);
      } finally {
        rawA.close();
        rawB.close();
        await b.stop();
        await a.stop();
      }
    },
  };
}
