import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Sql } from '../db/sql.ts';
import { loadEtcdProto } from '../server/proto.ts';
import type { Store } from '../store/store.ts';

/**
 * Moving in: copies another store's live keys (and leases) into an empty pgetcd database through
 * the store's one writer path. Every key becomes one Put, submitted in the source's revision
 * order with many in flight, so the writer's group commit batches them while each key still
 * gets its own revision in the source's order (the relative order of keys' versions is kept;
 * revisions themselves are new and gapless). The source's history is not copied.
 */

export interface ImportKey {
  key: Buffer;
  value: Buffer;
  /** pgetcd lease ID to attach ('0' for none). */
  lease: string;
}

export interface ImportLease {
  id: string;
  /** Seconds the lease lives from the import on. */
  ttl: number;
}

export interface ImportReport {
  source: string;
  keys: number;
  leases: number;
  /** Revision of the source the copy is consistent with (etcd), or its highest row id (kine). */
  sourceRevision: number;
  firstRevision: number;
  lastRevision: number;
  seconds: number;
  keysPerSecond: number;
  /** sha256 over the sorted (key, value, lease) of the source and, read back, of pgetcd. */
  sourceHash: string;
  targetHash: string;
}

export interface ImportOptions {
  /** Import into a database that already holds keys (they stay; imported keys are put on top). */
  force?: boolean;
  /** Puts in flight at once. */
  inflight?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Throws unless the target is a fresh store (or `force`). */
export async function assertEmptyTarget(sql: Sql, force: boolean): Promise<void> {
  const [r] = (await sql`SELECT (SELECT revision FROM meta WHERE id = 1) AS revision, (SELECT count(*)::int8 FROM kv_current) AS keys,
    (SELECT count(*)::int8 FROM leases) AS leases`) as unknown as Array<{ revision: number; keys: number; leases: number }>;
  if (!force && (r!.revision > 1 || r!.keys > 0 || r!.leases > 0)) {
    throw new Error(`the target database is not empty (revision ${r!.revision}, ${r!.keys} keys, ${r!.leases} leases); import into a fresh database, or pass --force to put the keys on top`);
  }
}

/** The digest both sides are compared by: sha256 over (key, value, has-lease) in key order. */
export function digest(items: Iterable<{ key: Buffer; value: Buffer; leased: boolean }>): string {
  const sorted = [...items].sort((a, b) => Buffer.compare(a.key, b.key));
  const h = createHash('sha256');
  const len = Buffer.alloc(4);
  for (const it of sorted) {
    len.writeUInt32BE(it.key.length);
    h.update(len).update(it.key);
    len.writeUInt32BE(it.value.length);
    h.update(len).update(it.value).update(it.leased ? '\x01' : '\x00');
  }
  return h.digest('hex');
}

/** Writes leases then keys through the store; returns the revisions used. */
async function writeAll(store: Store, keys: ImportKey[], leases: ImportLease[], opts: ImportOptions): Promise<{ first: number; last: number }> {
  for (const l of leases) await store.leaseGrant(l.id, l.ttl);
  const inflight = opts.inflight ?? 256;
  let first = 0;
  let last = 0;
  let done = 0;
  let next = 0;
  // Submitted in order from one loop: the writer's queue is first in, first out, so revisions
  // follow the submission order. Completions only refill the window.
  await new Promise<void>((resolve, reject) => {
    let active = 0;
    let failed = false;
    const pump = (): void => {
      while (!failed && active < inflight && next < keys.length) {
        const k = keys[next++]!;
        active++;
        store.put({ key: k.key, value: k.value, lease: k.lease, prev_kv: false, ignore_value: false, ignore_lease: false }).then((r) => {
          active--;
          done++;
          const rev = r.header.revision;
          if (first === 0 || rev < first) first = rev;
          if (rev > last) last = rev;
          opts.onProgress?.(done, keys.length);
          if (done === keys.length) resolve();
          else pump();
        }, (err: unknown) => {
          failed = true;
          reject(err);
        });
      }
    };
    if (keys.length === 0) resolve();
    else pump();
  });
  return { first, last };
}

async function targetDigest(sql: Sql): Promise<string> {
  const rows = (await sql`SELECT key, value, lease <> 0 AS leased FROM kv_current`) as unknown as Array<{ key: Buffer; value: Buffer; leased: boolean }>;
  return digest(rows);
}

async function finish(
  sql: Sql, source: string, sourceRevision: number, keys: ImportKey[], leases: ImportLease[], started: number, revs: { first: number; last: number },
): Promise<ImportReport> {
  const seconds = (Date.now() - started) / 1000;
  const sourceHash = digest(keys.map((k) => ({ key: k.key, value: k.value, leased: k.lease !== '0' })));
  const targetHash = await targetDigest(sql);
  const report: ImportReport = {
    source, keys: keys.length, leases: leases.length, sourceRevision, firstRevision: revs.first, lastRevision: revs.last,
    seconds, keysPerSecond: keys.length / Math.max(seconds, 0.001), sourceHash, targetHash,
  };
  const [c] = (await sql`SELECT count(*)::int8 AS n FROM kv_current`) as unknown as Array<{ n: number }>;
  if (sourceHash !== targetHash) throw new Error(`verification failed: the imported keys hash to ${targetHash}, the source's to ${sourceHash} (${c!.n} keys stored, ${keys.length} read)`);
  return report;
}

/**
 * kine's table (../shared/KINE.md): the live state of a key is its row with the highest id,
 * unless that row is a tombstone. Fill rows (`gap-…`) and kine's own compaction keys are not
 * data. kine's `lease` is a TTL in seconds (kine has no lease objects): keys with the same TTL
 * share one new lease with that TTL, counted from the import.
 */
export async function importFromKine(kine: Sql, target: Sql, store: Store, opts: ImportOptions = {}): Promise<ImportReport> {
  await assertEmptyTarget(target, opts.force === true);
  const started = Date.now();
  const rows = (await kine.begin('ISOLATION LEVEL REPEATABLE READ READ ONLY', async (tx) => tx`
    SELECT k.name, k.value, k.lease::int8 AS lease, k.id::int8 AS id, (SELECT max(id) FROM kine)::int8 AS top
    FROM kine k
    JOIN (SELECT name, max(id) AS id FROM kine GROUP BY name) last ON last.id = k.id
    WHERE k.deleted = 0 AND k.name NOT LIKE 'gap-%' AND k.name NOT IN ('compact_rev_key', 'compact_rev_key_apiserver')
    ORDER BY k.id`)) as unknown as Array<{ name: string; value: Buffer | null; lease: number; id: number; top: number }>;
  const ttls = [...new Set(rows.filter((r) => r.lease > 0).map((r) => r.lease))].sort((a, b) => a - b);
  const base = BigInt(Date.now()) << 16n;
  const leaseOf = new Map(ttls.map((ttl, i) => [ttl, String(base + BigInt(i))]));
  const leases = ttls.map((ttl) => ({ id: leaseOf.get(ttl)!, ttl }));
  const keys = rows.map((r) => ({ key: Buffer.from(r.name, 'utf8'), value: r.value ?? Buffer.alloc(0), lease: r.lease > 0 ? leaseOf.get(r.lease)! : '0' }));
  const revs = await writeAll(store, keys, leases, opts);
  return finish(target, 'kine', rows[0]?.top ?? 0, keys, leases, started, revs);
}

type Call = <T>(service: 'KV' | 'Lease', method: string, req: object) => Promise<T>;

function etcdClient(endpoint: string): { call: Call; close(): void } {
  const proto = loadEtcdProto();
  const host = endpoint.replace(/^https?:\/\//, '');
  const opts = { 'grpc.max_receive_message_length': -1 };
  const kv = new proto.clients.KV(host, grpc.credentials.createInsecure(), opts);
  const lease = new proto.clients.Lease(host, grpc.credentials.createInsecure(), opts);
  const call: Call = (service, method, req) => {
    const c = (service === 'KV' ? kv : lease) as unknown as Record<string, (r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: unknown) => void) => void>;
    return new Promise((resolve, reject) => c[method]!.call(c, req, { deadline: Date.now() + 60_000 }, (e, v) => (e ? reject(new Error(`etcd ${method}: ${e.details || e.message}`)) : resolve(v as never))));
  };
  return { call, close: () => { kv.close(); lease.close(); } };
}

interface EtcdKv { key: Buffer; value: Buffer; mod_revision: string; lease: string }

/**
 * A live etcd's key space at one revision (the first page's), read in pages of `page` keys
 * with etcd's paginated Range (as kube-apiserver lists), and its leases with the TTL each has
 * left. Keys go in in mod_revision order; each lease keeps its ID.
 */
export async function importFromEtcd(endpoint: string, target: Sql, store: Store, opts: ImportOptions & { page?: number } = {}): Promise<ImportReport> {
  await assertEmptyTarget(target, opts.force === true);
  const started = Date.now();
  const etcd = etcdClient(endpoint);
  try {
    const page = opts.page ?? 1000;
    const all: EtcdKv[] = [];
    let revision = 0;
    let from = Buffer.from([0]);
    for (;;) {
      const r = await etcd.call<{ header: { revision: string }; kvs: EtcdKv[]; more: boolean }>('KV', 'Range', {
        key: from, range_end: Buffer.from([0]), limit: page, revision,
      });
      if (revision === 0) revision = Number(r.header.revision);
      all.push(...r.kvs);
      if (!r.more || r.kvs.length === 0) break;
      from = Buffer.concat([r.kvs[r.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    const ids = (await etcd.call<{ leases: Array<{ ID: string }> }>('Lease', 'LeaseLeases', {})).leases.map((l) => l.ID);
    const leases: ImportLease[] = [];
    for (const id of ids) {
      const t = await etcd.call<{ TTL: string }>('Lease', 'LeaseTimeToLive', { ID: id, keys: false });
      // -1: expired between the list and this call; its keys are gone (or about to be) in etcd.
      if (Number(t.TTL) > 0) leases.push({ id, ttl: Number(t.TTL) });
    }
    const live = new Set(leases.map((l) => l.id));
    all.sort((a, b) => Number(a.mod_revision) - Number(b.mod_revision));
    const keys = all.map((kv) => ({ key: kv.key, value: kv.value, lease: kv.lease !== '0' && live.has(kv.lease) ? kv.lease : '0' }));
    opts.onProgress?.(0, keys.length);
    const revs = await writeAll(store, keys, leases, opts);
    return finish(target, 'etcd', revision, keys, leases, started, revs);
  } finally {
    etcd.close();
  }
}
