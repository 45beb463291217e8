import assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';
import type { Raw } from './raw.ts';
import { rng } from './seed.ts';

export { rng, seedFromEnv } from './seed.ts';

/**
 * A randomized differential run: one seeded sequence of KV and lease requests (puts with
 * prev_kv/ignore_value/ignore_lease/leases, ranges with every option, deletes, txns with
 * compares over ranges and nested txns, compactions, lease grants/revokes/lookups) sent to
 * several servers in lockstep; every answer (response or gRPC error) must be the same on all.
 * The servers start empty. Only what legitimately differs between servers is normalized: the
 * member and cluster IDs and the raft term of headers (compared as zero / non-zero), a lease's
 * remaining TTL (a clock). The generator avoids the one documented difference in KV answers
 * (docs/design.md "Known differences": a txn that writes a key twice in one revision), and
 * Compact(0).
 */

export interface DiffTarget {
  name: string;
  raw: Raw;
}

const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const KEYS = ['\x00', 'a', 'a/1', 'a/2', 'a/3', 'b', 'b/1', 'b/2', 'c/x/1', 'c/x/2', 'c/y', 'd', 'z\xff'];
const LEASES = ['101', '102', '103', '104'];

/** etcd's prefix end: the key with its last byte below 0xff incremented, or "\0" (from-key). */
function prefixEnd(k: string): string {
  const b = B(k);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const e = Buffer.from(b.subarray(0, i + 1));
      e[i]! += 1;
      return e.toString('latin1');
    }
  }
  return '\x00';
}

export interface Op {
  service: 'KV' | 'Lease';
  method: string;
  req: Record<string, unknown>;
}

interface GenState {
  revision: number;
  compacted: number;
}

class Gen {
  constructor(private readonly r: () => number, readonly st: GenState) {}

  int(n: number): number { return Math.floor(this.r() * n); }
  chance(p: number): boolean { return this.r() < p; }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]!; }

  key(): string { return this.pick(KEYS); }
  value(): string { return this.chance(0.15) ? '' : `v${this.int(50)}`; }
  lease(): string { return this.chance(0.1) ? '999' : this.pick(LEASES); }
  rev(): number { return this.int(this.st.revision + 2); }

  rangeEnd(key: string): string {
    switch (this.int(5)) {
      case 0: case 1: return '';
      case 2: return '\x00';
      case 3: return prefixEnd(key);
      default: return this.key();
    }
  }

  put(): Record<string, unknown> {
    const req: Record<string, unknown> = { key: B(this.key()), value: B(this.value()) };
    if (this.chance(0.3)) req.prev_kv = true;
    if (this.chance(0.3)) req.lease = this.lease();
    if (this.chance(0.12)) {
      req.ignore_value = true;
      if (!this.chance(0.1)) req.value = B('');
    }
    if (this.chance(0.12)) {
      req.ignore_lease = true;
      if (!this.chance(0.1)) delete req.lease;
    }
    return req;
  }

  /** A key and range_end; an empty range_end is left out (see withEnd). */
  span(): Record<string, unknown> {
    const key = this.key();
    return withEnd({ key: B(key) }, this.rangeEnd(key));
  }

  range(inTxn: boolean): Record<string, unknown> {
    const req = this.span();
    if (this.chance(0.3)) req.limit = this.int(4);
    if (this.chance(0.4)) { req.sort_order = this.int(3); req.sort_target = this.int(5); }
    if (this.chance(0.15)) req.keys_only = true;
    if (this.chance(0.1)) req.count_only = true;
    if (!inTxn && this.chance(0.1)) req.serializable = true;
    if (this.chance(0.15)) req.min_mod_revision = this.rev();
    if (this.chance(0.15)) req.max_mod_revision = this.rev();
    if (this.chance(0.15)) req.min_create_revision = this.rev();
    if (this.chance(0.15)) req.max_create_revision = this.rev();
    if (this.chance(0.2)) req.revision = Math.max(1, this.st.compacted - 1 + this.int(this.st.revision - this.st.compacted + 3));
    return req;
  }

  del(): Record<string, unknown> {
    const req = this.span();
    if (this.chance(0.4)) req.prev_kv = true;
    return req;
  }

  compare(): Record<string, unknown> {
    const key = this.key();
    const target = this.int(5);
    const c: Record<string, unknown> = { key: B(key), target, result: this.int(4) };
    if (this.chance(0.4)) withEnd(c, this.rangeEnd(key));
    switch (target) {
      case 0: c.version = this.int(4); break;
      case 1: c.create_revision = this.rev(); break;
      case 2: c.mod_revision = this.rev(); break;
      case 3: c.value = B(this.value()); break;
      default: c.lease = this.chance(0.3) ? '0' : this.lease(); break;
    }
    return c;
  }

  requestOp(depth: number): Record<string, unknown> {
    const k = this.int(depth < 2 ? 10 : 9);
    if (k < 3) return { request_range: this.range(true) };
    if (k < 6) return { request_put: this.put() };
    if (k < 8) return { request_delete_range: this.del() };
    if (k < 9) return { request_put: this.put() };
    return { request_txn: this.txn(depth + 1) };
  }

  txn(depth = 0): Record<string, unknown> {
    const ops = (): Array<Record<string, unknown>> => Array.from({ length: this.int(4) }, () => this.requestOp(depth));
    return { compare: Array.from({ length: this.int(3) }, () => this.compare()), success: ops(), failure: ops() };
  }

  op(): Op {
    const x = this.int(100);
    if (x < 28) return { service: 'KV', method: 'Put', req: this.put() };
    if (x < 50) return { service: 'KV', method: 'Range', req: this.range(false) };
    if (x < 58) return { service: 'KV', method: 'DeleteRange', req: this.del() };
    if (x < 82) {
      let t = this.txn();
      while (writesTwice(t)) t = this.txn();
      return { service: 'KV', method: 'Txn', req: t };
    }
    if (x < 86) {
      const from = Math.max(1, this.st.compacted - 1);
      return { service: 'KV', method: 'Compact', req: { revision: from + this.int(this.st.revision - from + 3), physical: this.chance(0.5) } };
    }
    if (x < 92) return { service: 'Lease', method: 'LeaseGrant', req: { ID: this.pick(LEASES), TTL: 3600 } };
    if (x < 96) return { service: 'Lease', method: 'LeaseRevoke', req: { ID: this.lease() } };
    if (x < 99) return { service: 'Lease', method: 'LeaseTimeToLive', req: { ID: this.lease(), keys: this.chance(0.7) } };
    return { service: 'Lease', method: 'LeaseLeases', req: {} };
  }
}

/**
 * An empty range_end is left out of the request: etcd 3.4 reads a range_end that is present on
 * the wire but empty as "to the end of the key space" in a Range (Go clients never send one;
 * protobufjs does when the field is set), which pgetcd does not copy (docs/design.md).
 */
function withEnd(req: Record<string, unknown>, end: string): Record<string, unknown> {
  if (end !== '') req.range_end = B(end);
  return req;
}

interface Written { key: string; level: number }
interface Deleted { key: string; end: string; level: number }

/**
 * True when a txn might write one key twice in one revision in a way etcd's syntactic check
 * lets through and pgetcd refuses (docs/design.md "Known differences"): a put covered by a
 * delete at another level, or by a from-key delete. Conservative: both branches count.
 */
function writesTwice(t: Record<string, unknown>): boolean {
  const puts: Written[] = [];
  const dels: Deleted[] = [];
  let levels = 0;
  const walk = (ops: Array<Record<string, unknown>>): void => {
    const level = levels++;
    for (const op of ops) {
      const p = op.request_put as { key: Buffer } | undefined;
      const d = op.request_delete_range as { key: Buffer; range_end?: Buffer } | undefined;
      const n = op.request_txn as { success: Array<Record<string, unknown>>; failure: Array<Record<string, unknown>> } | undefined;
      if (p) puts.push({ key: p.key.toString('latin1'), level });
      if (d) dels.push({ key: d.key.toString('latin1'), end: d.range_end?.toString('latin1') ?? '', level });
      if (n) { walk(n.success); walk(n.failure); }
    }
  };
  walk(t.success as Array<Record<string, unknown>>);
  walk(t.failure as Array<Record<string, unknown>>);
  return puts.some((p) => dels.some((d) => {
    const covers = d.end === '' ? p.key === d.key : p.key >= d.key && (d.end === '\x00' || p.key < d.end);
    return covers && (p.level !== d.level || d.end === '\x00');
  }));
}

/** The answer to compare: a response with server-specific fields normalized, or an error. */
export type Answer = { ok: unknown } | { code: number; details: string };

function normalize(v: unknown, parentKey = ''): unknown {
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  if (Array.isArray(v)) {
    const a = v.map((x) => normalize(x));
    // A lease's keys and the lease list come from maps in etcd: their order means nothing.
    if (parentKey === 'keys' || parentKey === 'leases') a.sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1));
    return a;
  }
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (parentKey === 'header' && (k === 'cluster_id' || k === 'member_id' || k === 'raft_term')) o[k] = x === '0' ? '0' : 'set';
      else if (k === 'TTL' && parentKey === 'lease_ttl') o[k] = Number(x) > 0 ? 'positive' : x;
      else o[k] = normalize(x, k);
    }
    return o;
  }
  return v;
}

async function answer(t: DiffTarget, op: Op): Promise<Answer> {
  try {
    const r = await t.raw.call(op.service, op.method, op.req);
    return { ok: normalize(op.method === 'LeaseTimeToLive' ? { lease_ttl: r } : r) };
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (typeof err.code !== 'number') throw e;
    return { code: err.code, details: err.details };
  }
}

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (x && typeof x === 'object' && (x as { type?: string }).type === 'Buffer' && Array.isArray((x as { data?: unknown }).data)) {
      return Buffer.from((x as { data: number[] }).data).toString('latin1');
    }
    return x;
  });
}

function headerRevision(a: Answer): number | undefined {
  if (!('ok' in a)) return undefined;
  const h = (a.ok as { header?: { revision?: string }; lease_ttl?: { header?: { revision?: string } } });
  const r = h.header?.revision ?? h.lease_ttl?.header?.revision;
  return r === undefined ? undefined : Number(r);
}

/**
 * Runs `count` generated requests on every target in lockstep and fails at the first answer
 * that differs, naming the seed, the step and the request. Ends with a full read of the key
 * space at every revision still readable, which must also agree.
 */
export async function runDifferential(targets: DiffTarget[], seed: number, count: number): Promise<void> {
  const g = new Gen(rng(seed), { revision: 1, compacted: 0 });
  const step = async (i: number, op: Op): Promise<void> => {
    const answers = await Promise.all(targets.map((t) => answer(t, op)));
    if (process.env.PGETCD_TEST_DIFF_LOG) console.log(`${i} ${op.service}.${op.method} ${show(op.req)} -> ${show(answers[0])}`);
    for (let j = 1; j < targets.length; j++) {
      assert.deepEqual(answers[j], answers[0],
        `seed ${seed} step ${i}: ${op.service}.${op.method} ${show(op.req)}\n${targets[0]!.name}: ${show(answers[0])}\n${targets[j]!.name}: ${show(answers[j])}`);
    }
    const rev = headerRevision(answers[0]!);
    if (rev !== undefined) g.st.revision = Math.max(g.st.revision, rev);
    if (op.method === 'Compact' && 'ok' in answers[0]!) g.st.compacted = Number(op.req.revision);
  };
  for (let i = 0; i < count; i++) await step(i, g.op());
  for (let rev = Math.max(1, g.st.compacted); rev <= g.st.revision; rev++) {
    await step(count + rev, { service: 'KV', method: 'Range', req: { key: B('\x00'), range_end: B('\x00'), revision: rev } });
  }
}
