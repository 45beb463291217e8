/**
 * grpc.health.v1.Health on the client port (issue 18, item 4): Kubernetes' gRPC probes and
 * grpc_health_probe call Check; NOT_SERVING while PostgreSQL is unreachable.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { EmbeddedPostgres } from '../src/db/embedded.ts';
import { targetToUrl } from '../src/db/target.ts';
import { createLogger } from '../src/log.ts';
import { LOADER_OPTIONS } from '../src/server/proto.ts';
import { freePort, startServerProcess, type ServerProcess } from './helpers/server.ts';

const SERVING = 1;
const NOT_SERVING = 2;
const SERVICE_UNKNOWN = 3;

type HealthClient = grpc.Client & {
  Check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: { status: number }) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: number }>;
};

function healthClient(endpoint: string): HealthClient {
  const pkg = protoLoader.loadSync(['grpc/health/v1/health.proto'], LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(pkg) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  return new loaded.grpc.health.v1.Health(endpoint, grpc.credentials.createInsecure()) as unknown as HealthClient;
}

function check(c: HealthClient, service = ''): Promise<number> {
  return new Promise((resolve, reject) => {
    c.Check({ service }, { deadline: Date.now() + 15_000 }, (err, res) => (err ? reject(err) : resolve(res.status)));
  });
}

async function eventually(what: string, f: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await f().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('gRPC health service', () => {
  // A private PostgreSQL, stopped and started by the test.
  let pg: EmbeddedPostgres;
  let dir: string;
  let srv: ServerProcess;
  let client: HealthClient;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgetcd-health-'));
    await fs.chmod(dir, 0o755);
    pg = new EmbeddedPostgres({ dataDir: path.join(dir, 'db'), port: 5432, tcp: false, log: createLogger('silent') });
    // A child process: it is killed at the end, so its shutdown never races PostgreSQL's restart.
    srv = await startServerProcess(targetToUrl(await pg.start()), await freePort());
    client = healthClient(srv.endpoint);
  });
  after(async () => {
    client?.close();
    await srv?.kill();
    await pg?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('Check answers SERVING for the server, NOT_FOUND for an unknown service', async () => {
    assert.equal(await check(client), SERVING);
    await assert.rejects(check(client, 'etcdserverpb.KV.nope'), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.NOT_FOUND);
      assert.equal(err.details, 'unknown service');
      return true;
    });
  });

  it('Watch of an unknown service says SERVICE_UNKNOWN and stays open', async () => {
    const w = client.Watch({ service: 'nope' });
    const first = await new Promise<number>((resolve, reject) => {
      w.once('data', (d: { status: number }) => resolve(d.status));
      w.once('error', reject);
    });
    assert.equal(first, SERVICE_UNKNOWN);
    w.cancel();
  });

  it('NOT_SERVING while PostgreSQL is down, SERVING again after; Watch follows both changes', async () => {
    const seen: number[] = [];
    const w = client.Watch({ service: '' });
    w.on('data', (d: { status: number }) => seen.push(d.status));
    w.on('error', () => undefined);
    try {
      await eventually('the first Watch status', async () => seen.length > 0);
      assert.deepEqual(seen, [SERVING]);
      await pg.stop();
      await eventually('Check to say NOT_SERVING', async () => (await check(client)) === NOT_SERVING);
      await eventually('Watch to say NOT_SERVING', async () => seen.includes(NOT_SERVING));
      await pg.start();
      await eventually('Check to say SERVING', async () => (await check(client)) === SERVING);
      await eventually('Watch to say SERVING again', async () => seen.at(-1) === SERVING && seen.length >= 3);
      assert.deepEqual(seen, [SERVING, NOT_SERVING, SERVING]);
    } finally {
      w.cancel();
    }
  });
});
