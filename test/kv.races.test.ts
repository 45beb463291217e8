/**
 * Races in the write path, forced with the write-fault hook (src/store/faults.ts) so that each
 * interleaving happens every run: a batch evaluated on top of a batch that then fails while
 * other commits reach the same revision number, puts and revokes racing a revoke, a historical
 * read in a Txn racing a compaction, and failures that are not the database being away.
 * Afterwards the store must be consistent (src/store/check.ts) and the answers etcd's.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { after, afterEach, describe, it } from 'node:test';
import { startPair, startServer, type TestServer } from './helpers/server.ts';
import { expectGrpcError, rawClients } from './helpers/raw.ts';
import { assertConsistent } from './helpers/consistency.ts';
import { waitFor } from './helpers/wait.ts';
import { sqlFor } from './helpers/db.ts';
import { writeFaults, type CommitFault } from '../src/store/faults.ts';
import { StoreError } from '../src/store/errors.ts';

const B = (s: string): Buffer => Buffer.from(s);

type Plan = 'pass' | 'hold' | { reject: { code?: string; message: string } };

/**
 * Numbers the commits of one writer as they reach the hook and applies `plan(call)` to each:
 * pass, hold until released, or fail it with an error that looks like PostgreSQL's.
 */
class Gate {
  readonly calls: CommitFault[] = [];
  private readonly held = new Map<number, () => void>();
  private opened = false;

  constructor(writer: object, plan: (n: number, f: CommitFault) => Plan) {
    writeFaults.beforeCommit = (f) => {
      if (f.writer !== writer) return undefined;
      const n = this.calls.length;
      this.calls.push(f);
      const p = this.opened ? 'pass' : plan(n, f);
      if (p === 'pass') return undefined;
      if (p === 'hold') return new Promise<void>((resolve) => this.held.set(n, resolve));
      return Promise.reject(Object.assign(new Error(p.reject.message), p.reject.code ? { code: p.reject.code } : {}));
    };
  }

  /** Waits until commit `n` reached the hook; false if it did not within `ms`. */
  async reached(n: number, ms = 5000): Promise<boolean> {
    const end = Date.now() + ms;
    while (this.calls.length <= n) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
    return true;
  }

  release(n: number): void {
    this.held.get(n)?.();
    this.held.delete(n);
  }

  /** Releases every held commit and lets every later one pass. */
  open(): void {
    this.opened = true;
    for (const n of [...this.held.keys()]) this.release(n);
  }
}

const settle = <T>(p: Promise<T>): Promise<T | Error> => p.catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));

const indexReady = (s: TestServer): Promise<true> =>
  waitFor('the key index to load', async () => (s.app.store.indexStats().revision >= 0 ? true : undefined));

afterEach(() => { delete writeFaults.beforeCommit; });

describe('a batch is never committed on a history that did not happen', () => {
  it('one instance: a batch queued behind a failed speculation and its redo', { timeout: 60_000 }, async () => {
    const srv = await startServer();
    const store = srv.app.store;
    let gate: Gate | undefined;
    try {
      // Both pipeline connections open, the index loaded and current.
      await store.put({ key: B('/aba/a'), value: B('a0'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false });
      await store.put({ key: B('/aba/a'), value: B('a1'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false });
      await indexReady(srv);
      await waitFor('the index to catch up', async () => (store.indexStats().revision === (await store.currentRevision()).revision ? true : undefined));
      const put = (k: string, v: string): Promise<unknown> =>
        store.put({ key: B(k), value: B(v), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false });

      // The writer takes a new batch only when it looks at its queue, so the test queues each
      // batch from inside the hook, at the moment the interleaving needs it.
      // Commit 0, batch X (put a), passes. Commit 1 is batch Y (put b, put c): it queues batch Z
      // (put a, put d); if Y was evaluated on the key index it fails as a speculation whose store
      // moved on (what PostgreSQL answers when Y's check runs before X's commit is visible) and
      // is redone the reading way, as commit 2, held with the meta lock. Commit 3 (Z, while the
      // redo is in flight) queues batch W (put a) and is held. The faulty writer evaluated Z on
      // the index and W on top of Z, and let W through once the redo had brought the store to
      // Z's revision number, though Z then failed. A correct writer may order all this
      // differently (held commits hold the meta lock), so every wait below has a time limit.
      const pending: Array<Promise<unknown>> = [];
      gate = new Gate(store.writer, (n, f) => {
        if (n === 1) {
          pending.push(settle(put('/aba/a', 'z1')), settle(put('/aba/d', 'z2')));
          return f.speculative ? { reject: { code: 'PGE01', message: 'the store is no longer at revision (injected)' } } : 'hold';
        }
        if (n === 2) return 'hold';
        if (n === 3) {
          pending.push(settle(put('/aba/a', 'w')));
          return 'hold';
        }
        return 'pass';
      });
      pending.push(settle(put('/aba/a', 'x')), settle(put('/aba/b', 'y1')), settle(put('/aba/c', 'y2')));
      await gate.reached(2, 2000);
      await gate.reached(3, 2000);
      gate.release(2);
      await gate.reached(4, 2000);
      gate.open();
      // A writer that never reached commit 3 has not queued W yet.
      if (pending.length < 6) pending.push(settle(put('/aba/a', 'w')));
      const results = await Promise.all(pending);
      for (const r of results) assert.ok(!(r instanceof Error), `every put succeeds: ${String(r)}`);
      delete writeFaults.beforeCommit;

      await assertConsistent(srv.databaseUrl);
      // a was put five times in all (a0, a1, x, z1, w): version 5 now, whatever the order.
      const raw = rawClients(srv.endpoint);
      const got = await raw.call('KV', 'Range', { key: B('/aba/a') });
      raw.close();
      assert.equal(Number(got.kvs[0].version), 5);
    } finally {
      gate?.open();
      delete writeFaults.beforeCommit;
      await srv.stop();
    }
  });

  it('two instances: a batch built on a batch that fails while the other instance writes as many revisions', { timeout: 60_000 }, async () => {
    const pair = await startPair();
    const a = pair.a.app.store;
    let gate: Gate | undefined;
    try {
      const put = (k: string, v: string): Promise<unknown> =>
        a.put({ key: B(k), value: B(v), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false });
      await put('/aba2/k', 'v0');
      await put('/aba2/k', 'v1');
      await indexReady(pair.a);
      await waitFor('the index to catch up', async () => (a.indexStats().revision === (await a.currentRevision()).revision ? true : undefined));

      // Batches P (put k) and Q (put k), taken one after the other, are both held at their
      // commits; meanwhile instance B writes one revision. Q goes first: the faulty writer had
      // evaluated Q on top of P (expecting the store at P's revision, which B's write reached)
      // and let it through with P's version and B's row as its prev_revision.
      gate = new Gate(a.writer, (n) => (n <= 1 ? 'hold' : 'pass'));
      const p = settle(put('/aba2/k', 'p'));
      const q = settle(put('/aba2/k', 'q'));
      assert.ok(await gate.reached(0), 'batch P reached its commit');
      const qHeld = await gate.reached(1, 1000);
      // B's write waits on the meta lock if A holds it (a batch of A on the reading path).
      const b = settle(pair.rawB.call('KV', 'Put', { key: B('/aba2/other'), value: B('b') }));
      await Promise.race([b, new Promise((r) => setTimeout(r, 300))]);
      if (qHeld) gate.release(1);
      await Promise.race([q, new Promise((r) => setTimeout(r, 300))]);
      gate.open();
      const results = await Promise.all([p, q, b]);
      for (const r of results) assert.ok(!(r instanceof Error), `every put succeeds: ${String(r)}`);
      delete writeFaults.beforeCommit;
      await assertConsistent(pair.a.databaseUrl);
    } finally {
      gate?.open();
      delete writeFaults.beforeCommit;
      await pair.stop();
    }
  });
});

describe('every read a batch depends on happens after the meta lock', () => {
  // The racing requests are submitted in one tick, so the writer takes the first as one batch
  // and, while that batch's commit is held (with the meta lock), the rest as the next batch,
  // which prepares behind the lock: the pipelined path the race needs.
  const putReq = (k: string, lease: string) => ({ key: B(k), value: B('v'), lease, prev_kv: false, ignore_value: false, ignore_lease: false });
  const code = (r: unknown): string | undefined => (r instanceof StoreError ? r.code : undefined);

  for (const keyIndex of [true, false]) {
    const tag = keyIndex ? '' : ' (no key index)';

    it(`puts on a lease queued behind its revoke fail with "requested lease not found"${tag}`, { timeout: 60_000 }, async () => {
      const srv = await startServer({ keyIndex });
      const store = srv.app.store;
      const raw = rawClients(srv.endpoint);
      let gate: Gate | undefined;
      try {
        const g = await raw.call('Lease', 'LeaseGrant', { TTL: 60 });
        await raw.call('KV', 'Put', { key: B('/lr/0'), value: B('v'), lease: g.ID });
        gate = new Gate(store.writer, (n) => (n === 0 ? 'hold' : 'pass'));
        const revoke = settle(store.leaseRevoke(String(g.ID)));
        const puts = Array.from({ length: 8 }, (_, i) => settle(store.put(putReq(`/lr/${i + 1}`, String(g.ID)))));
        assert.ok(await gate.reached(0));
        await new Promise((r) => setTimeout(r, 200));
        gate.open();
        assert.ok(!((await revoke) instanceof Error));
        for (const r of await Promise.all(puts)) assert.equal(code(r), 'LeaseNotFound', `a put on a revoked lease must fail: ${String(r)}`);
        const left = await raw.call('KV', 'Range', { key: B('/lr/'), range_end: B('/lr0') });
        assert.equal(left.kvs.length, 0, 'no key outlives its revoked lease');
        // And through gRPC: etcd's status and message.
        await expectGrpcError(raw.call('KV', 'Put', { key: B('/lr/x'), value: B('v'), lease: g.ID }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
        delete writeFaults.beforeCommit;
        await assertConsistent(srv.databaseUrl);
      } finally {
        gate?.open();
        raw.close();
        await srv.stop();
      }
    });
  }

  it('two revokes of one lease: the second gets "requested lease not found"', { timeout: 60_000 }, async () => {
    const srv = await startServer();
    const store = srv.app.store;
    const raw = rawClients(srv.endpoint);
    let gate: Gate | undefined;
    try {
      const g = await raw.call('Lease', 'LeaseGrant', { TTL: 60 });
      await raw.call('KV', 'Put', { key: B('/rr/k'), value: B('v'), lease: g.ID });
      gate = new Gate(store.writer, (n) => (n === 0 ? 'hold' : 'pass'));
      const first = settle(store.leaseRevoke(String(g.ID)));
      const second = settle(store.leaseRevoke(String(g.ID)));
      assert.ok(await gate.reached(0));
      await new Promise((r) => setTimeout(r, 200));
      gate.open();
      assert.ok(!((await first) instanceof Error));
      assert.equal(code(await second), 'LeaseNotFound');
    } finally {
      gate?.open();
      raw.close();
      await srv.stop();
    }
  });

  it('a lease expiring while it is kept alive and written to: no renewal after the claim, no put after the revoke, no key left', { timeout: 60_000 }, async () => {
    const srv = await startServer();
    const store = srv.app.store;
    const raw = rawClients(srv.endpoint);
    const sql = sqlFor(srv.databaseUrl);
    const ka = (raw.Lease as unknown as { LeaseKeepAlive(): grpc.ClientDuplexStream<object, { ID: string; TTL: string }> }).LeaseKeepAlive();
    ka.on('error', () => undefined);
    const answers: Array<{ ID: string; TTL: string }> = [];
    ka.on('data', (d: { ID: string; TTL: string }) => answers.push(d));
    const keepAlive = async (id: string): Promise<{ ID: string; TTL: string }> => {
      const n = answers.length;
      ka.write({ ID: id });
      return waitFor('a keep-alive answer', async () => answers[n]);
    };
    let gate: Gate | undefined;
    try {
      const g = await raw.call('Lease', 'LeaseGrant', { TTL: 60 });
      const id = String(g.ID);
      await raw.call('KV', 'Put', { key: B('/le/0'), value: B('v'), lease: g.ID });
      assert.equal(String((await keepAlive(id)).TTL), '60', 'kept alive before it is due');
      // The expirer's revoke of this lease is held between evaluation and commit.
      gate = new Gate(store.writer, (_n, f) => (f.types.includes('leaseRevoke') ? 'hold' : 'pass'));
      await sql`UPDATE leases SET expires_at = now() - interval '1 second' WHERE id = ${id}::int8`;
      await waitFor('the expiry to reach the writer', async () => (gate!.calls.some((c) => c.types.includes('leaseRevoke')) ? true : undefined), 15_000);
      // Claimed: a keep-alive cannot bring it back (etcd: a lease past its expiry is not renewed).
      assert.equal(String((await keepAlive(id)).TTL), '0', 'a claimed lease is not renewed');
      const puts = Array.from({ length: 8 }, (_, i) => settle(store.put({ key: B(`/le/${i + 1}`), value: B('v'), lease: id, prev_kv: false, ignore_value: false, ignore_lease: false })));
      await new Promise((r) => setTimeout(r, 200));
      gate.open();
      for (const r of await Promise.all(puts)) assert.equal(code(r), 'LeaseNotFound', `a put queued behind the expiry must fail: ${String(r)}`);
      const left = await raw.call('KV', 'Range', { key: B('/le/'), range_end: B('/le0') });
      assert.equal(left.kvs.length, 0, 'no key outlives its expired lease');
      assert.equal(String((await keepAlive(id)).TTL), '0', 'an expired lease stays gone');
      assert.equal(String((await raw.call('Lease', 'LeaseTimeToLive', { ID: g.ID })).TTL), '-1');
      delete writeFaults.beforeCommit;
      await assertConsistent(srv.databaseUrl);
    } finally {
      gate?.open();
      ka.end();
      raw.close();
      await sql.end();
      await srv.stop();
    }
  });

  it('a historical range in a Txn queued behind a compaction gets the compacted error', { timeout: 60_000 }, async () => {
    const srv = await startServer();
    const store = srv.app.store;
    const raw = rawClients(srv.endpoint);
    let gate: Gate | undefined;
    try {
      const p1 = await raw.call('KV', 'Put', { key: B('/hc/k'), value: B('1') });
      await raw.call('KV', 'Put', { key: B('/hc/k'), value: B('2') });
      const p3 = await raw.call('KV', 'Put', { key: B('/hc/k'), value: B('3') });
      gate = new Gate(store.writer, (n) => (n === 0 ? 'hold' : 'pass'));
      const compact = settle(store.compact(Number(p3.header.revision), false));
      const txn = settle(store.txn({
        compare: [], failure: [],
        success: [{ type: 'range', range: { key: B('/hc/k'), range_end: Buffer.alloc(0), limit: 0, revision: Number(p1.header.revision), sort_order: 0, sort_target: 0, serializable: false, keys_only: false, count_only: false, min_mod_revision: 0, max_mod_revision: 0, min_create_revision: 0, max_create_revision: 0 } }],
      }));
      assert.ok(await gate.reached(0));
      await new Promise((r) => setTimeout(r, 200));
      gate.open();
      assert.ok(!((await compact) instanceof Error));
      assert.equal(code(await txn), 'Compacted', `the txn must fail as compacted, got ${JSON.stringify(await txn)}`);
    } finally {
      gate?.open();
      raw.close();
      await srv.stop();
    }
  });
});

describe('a failure that is not the database being away is final, not retryable', () => {
  let srv: TestServer;
  after(async () => { await srv?.stop(); });

  it('maps each kind of failure to a non-retryable status (UNAVAILABLE only for an unreachable database)', { timeout: 60_000 }, async () => {
    srv = await startServer({ keyIndex: false });
    const raw = rawClients(srv.endpoint);
    try {
      const cases: Array<[{ code?: string; message: string }, grpc.status, string]> = [
        [{ code: '54000', message: 'index row size exceeds maximum (injected)' }, grpc.status.INVALID_ARGUMENT, 'etcdserver: request is too large'],
        [{ code: '22P02', message: 'invalid input (injected)' }, grpc.status.INTERNAL, 'etcdserver: internal error; the server log has the cause'],
        [{ message: 'a bug (injected)' }, grpc.status.INTERNAL, 'etcdserver: internal error; the server log has the cause'],
        [{ code: '57P01', message: 'terminating connection due to administrator command (injected)' }, grpc.status.UNAVAILABLE, 'etcdserver: request timed out'],
      ];
      for (const [err, code, details] of cases) {
        new Gate(srv.app.store.writer, (n) => (n === 0 ? { reject: err } : 'pass'));
        await expectGrpcError(raw.call('KV', 'Put', { key: B('/fail/k'), value: B('v') }), code, details);
        delete writeFaults.beforeCommit;
      }
      // A real constraint violation: a row already at the revision the next put will take.
      const { header } = await raw.call('KV', 'Put', { key: B('/fail/real'), value: B('1') });
      const sql = sqlFor(srv.databaseUrl);
      try {
        await sql`INSERT INTO kv_log (mod_revision, sub, create_revision, prev_revision, version, lease, deleted, kind, key, value)
          VALUES (${Number(header.revision) + 1}, 0, 1, 0, 1, 0, false, '', ${B('/fail/real')}, ${B('x')})`;
      } finally {
        await sql.end();
      }
      await expectGrpcError(raw.call('KV', 'Put', { key: B('/fail/real'), value: B('2') }), grpc.status.INTERNAL, 'etcdserver: internal error; the server log has the cause');
    } finally {
      delete writeFaults.beforeCommit;
      raw.close();
    }
  });
});
