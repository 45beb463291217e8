/**
 * Members: every pgetcd instance on one database is an etcd member. Three instances run as
 * child processes; MemberList from each names all three, one is killed with SIGKILL and leaves
 * the list; membership changes answer with etcd's errors; Go clientv3 with AutoSyncInterval
 * starts from one endpoint and finds the others (skipped without go and Debian's etcd sources).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createTestDatabase } from './helpers/db.ts';
import { expectGrpcError, rawClients, type Raw } from './helpers/raw.ts';
import { freePort, startServerProcess, type ServerProcess } from './helpers/server.ts';
import { waitFor } from './helpers/wait.ts';

interface WireMember { ID: string; name: string; clientURLs: string[]; peerURLs: string[]; isLearner: boolean }

async function members(raw: Raw): Promise<{ self: string; list: WireMember[] }> {
  const r = await raw.call('Cluster', 'MemberList', { linearizable: true });
  return { self: r.header.member_id as string, list: r.members as WireMember[] };
}

const names = (list: WireMember[]): string[] => list.map((m) => m.name).sort();

describe('members: the running instances on one database', { timeout: 120_000 }, () => {
  let db: string;
  let procs: ServerProcess[] = [];
  let raws: Raw[] = [];
  let ports: number[] = [];

  before(async () => {
    db = await createTestDatabase();
    ports = [await freePort(), await freePort(), await freePort()];
    // One at a time first (migrations), then the other two together.
    procs.push(await startServerProcess(db, ports[0]!));
    procs.push(...(await Promise.all([startServerProcess(db, ports[1]!), startServerProcess(db, ports[2]!)])));
    raws = procs.map((p) => rawClients(p.endpoint));
  });
  after(async () => {
    for (const r of raws) r.close();
    await Promise.all(procs.map((p) => p.stop()));
  });

  it('MemberList on every instance names all three, each with its own ID, name and client URL', async () => {
    const want = ports.map((p) => `p${p}`).sort();
    const ids = new Set<string>();
    for (const [i, raw] of raws.entries()) {
      const { self, list } = await members(raw);
      assert.deepEqual(names(list), want);
      const me = list.find((m) => m.ID === self);
      assert.ok(me, `instance ${i} lists itself`);
      assert.equal(me.name, `p${ports[i]}`);
      assert.deepEqual(me.clientURLs, [`http://127.0.0.1:${ports[i]}`]);
      assert.deepEqual(me.peerURLs, []);
      assert.equal(me.isLearner, false);
      ids.add(self);
      const s = await raw.call('Maintenance', 'Status', {});
      assert.equal(s.header.member_id, self, 'Status reports its own member ID');
      assert.equal(s.leader, self, 'every instance takes writes: it reports itself as leader');
    }
    assert.equal(ids.size, 3);
  });

  it('membership changes answer with etcd codes and say that membership follows running instances', async () => {
    const { self, list } = await members(raws[0]!);
    const other = list.find((m) => m.ID !== self)!;
    const follows = 'pgetcd: membership follows running instances (they share state through PostgreSQL, not Raft)';
    await expectGrpcError(raws[0]!.call('Cluster', 'MemberAdd', { peerURLs: ['http://10.0.0.1:2380'] }), grpc.status.UNIMPLEMENTED,
      `${follows}: start another pgetcd instance on the same database to add a member`);
    await expectGrpcError(raws[0]!.call('Cluster', 'MemberRemove', { ID: other.ID }), grpc.status.FAILED_PRECONDITION,
      `${follows}: stop the instance named "${other.name}" to remove it`);
    await expectGrpcError(raws[0]!.call('Cluster', 'MemberRemove', { ID: '12345' }), grpc.status.NOT_FOUND, 'etcdserver: member not found');
    await expectGrpcError(raws[0]!.call('Cluster', 'MemberUpdate', { ID: other.ID, peerURLs: ['http://x:1'] }), grpc.status.UNIMPLEMENTED,
      `${follows}: members have no peer URLs to update; client URLs come from --advertise-client-urls`);
    await expectGrpcError(raws[0]!.call('Cluster', 'MemberPromote', { ID: other.ID }), grpc.status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member');
    await expectGrpcError(raws[0]!.call('Cluster', 'MemberPromote', { ID: '12345' }), grpc.status.NOT_FOUND, 'etcdserver: member not found');
  });

  it('an instance killed with SIGKILL leaves the list at once and rejoins when restarted', async (t) => {
    const victim = `p${ports[2]}`;
    const t0 = Date.now();
    await procs[2]!.kill();
    await waitFor('the killed member to leave', async () => (names((await members(raws[0]!)).list).includes(victim) ? undefined : true), 5000);
    const ms = Date.now() - t0;
    t.diagnostic(`killed member left MemberList after ${ms} ms`);
    // PostgreSQL ends the dead process's session when its socket closes, releasing the lock.
    assert.ok(ms < 3000, `left after ${ms} ms`);
    assert.deepEqual(names((await members(raws[1]!)).list), [`p${ports[0]}`, `p${ports[1]}`].sort());
    // It comes back under the same ID when restarted.
    procs[2] = await startServerProcess(db, ports[2]!);
    raws[2]!.close();
    raws[2] = rawClients(procs[2].endpoint);
    await waitFor('the restarted member', async () => ((await members(raws[0]!)).list.length === 3 ? true : undefined), 5000);
  });
});

const GOPATH = process.env.PGETCD_GO_COMPAT_GOPATH ?? '/usr/share/gocode';
const goMissing = ((): string | undefined => {
  const v = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) return 'go is not on PATH (apt-get install golang-go)';
  if (!fs.existsSync(path.join(GOPATH, 'src', 'go.etcd.io/etcd/clientv3'))) return `etcd's Go sources are not under ${GOPATH} (apt-get install golang-etcd-server-dev)`;
  return undefined;
})();

describe('Go clientv3 with AutoSyncInterval discovers the instances', { skip: goMissing ?? false, timeout: 400_000 }, () => {
  let procs: ServerProcess[] = [];
  after(async () => { await Promise.all(procs.map((p) => p.stop())); });

  it('starts with one endpoint, syncs to all three, drops the one killed, and keeps writing', { timeout: 390_000 }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-members-go-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const bin = path.join(dir, 'go-compat');
    const env = { ...process.env, GO111MODULE: 'off', GOPATH, GOFLAGS: '', GOPROXY: 'off', CGO_ENABLED: '0', GOCACHE: process.env.GOCACHE ?? path.join(os.tmpdir(), 'pgetcd-go-build-cache') };
    const src = path.join(path.dirname(fileURLToPath(import.meta.url)), 'go-compat');
    const build = spawnSync('go', ['build', '-o', bin, '.'], { cwd: src, env, encoding: 'utf8', timeout: 300_000 });
    assert.equal(build.status, 0, `go build failed: ${build.stderr}`);

    const db = await createTestDatabase();
    const ports = [await freePort(), await freePort(), await freePort()];
    for (const p of ports) procs.push(await startServerProcess(db, p));
    const go = spawn(bin, ['-only', 'members', '-members', '3', procs[0]!.endpoint], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    go.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((resolve) => go.on('close', resolve));
    await new Promise<void>((resolve, reject) => {
      go.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('SYNCED')) resolve();
      });
      void exited.then(() => reject(new Error(`go-compat ended before syncing:\n${out}\n${err}`)));
    });
    const synced = /SYNCED (\S+)/.exec(out)![1]!.split(',');
    assert.deepEqual(synced.sort(), ports.map((p) => `http://127.0.0.1:${p}`).sort());
    // Kill one that is not the seed endpoint: the client must learn of its leaving from the others.
    await procs[1]!.kill();
    go.stdin.write('killed\n');
    const code = await exited;
    for (const l of out.trim().split('\n')) t.diagnostic(l);
    assert.match(out, /^PASS members\.auto_sync/m, `${out}\n${err.split('\n').slice(-20).join('\n')}`);
    assert.equal(code, 0);
  });
});
