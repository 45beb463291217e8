import type postgres from 'postgres';
import type { Sql } from '../db/sql.ts';
import { ConnectionLoss } from '../db/loss.ts';
import type { Logger } from '../log.ts';
import { BatchApplier, collect, newReadSet, type Entry, type Mutation, type MutationResult, type MutationResults, type ReadSet, type LogRow } from './apply.ts';
import { StoreError, isStoreError } from './errors.ts';
import { rangeQuery } from './reader.ts';
import { isFromKey, isSingleKey } from './rangeview.ts';
import type { KeyValue, RangeRequest, RangeResponse } from './types.ts';
import { toUnavailable } from './pgerrors.ts';
import { kindOf as kindOfKey } from './kind.ts';
import type { KeyIndex } from './keyindex.ts';
import { fill, speculate } from './speculate.ts';
import { writeFaults } from './faults.ts';
import type { RevisionGuard } from './regression.ts';

const EMPTY = Buffer.alloc(0);

type Fragment = postgres.PendingQuery<postgres.Row[]>;

interface Pending {
  m: Mutation;
  bytes: number;
  resolve: (r: MutationResult) => void;
  reject: (e: unknown) => void;
}

export interface WriterOptions {
  log: Logger;
  /** Most mutations in one Postgres transaction. */
  maxBatch: number;
  /** Most request bytes in one transaction (a larger single request still runs alone). */
  maxBatchBytes: number;
  /** Called after each commit that created revisions, with what it wrote. */
  onCommit?: (c: Commit) => void;
  /** Called when a batch's commit has finished, committed or not. */
  onSettled?: () => void;
  /**
   * Opens a dedicated single-connection client (max: 1, no max lifetime) for one pipeline slot
   * and calls onClose when its connection closes. Not a reserved pool connection: postgres.js
   * 3.4 throws an uncatchable error or hangs when a reserved connection is used after its
   * backend died, and can leave a query unsettled when its socket errors; the writer gives up a
   * slot's client at its first failure and watches for closes itself.
   */
  connect: (onClose: () => void) => Sql;
  /** Every live key's metadata: batches it can answer skip the reading round trip. */
  index?: KeyIndex;
  /** Told about each batch (metrics). */
  observer?: WriteObserver;
  /** Refuses a batch when the store is behind a revision already served (see regression.ts). */
  guard?: RevisionGuard;
}

/** What the writer reports about its batches; the store does not know how it is kept. */
export interface WriteObserver {
  /** A batch committed: its requests, their encoded bytes, the commit's duration, and its path. */
  batchCommitted(requests: number, bytes: number, seconds: number, oneRoundTrip: boolean): void;
  /** A one-round-trip batch was refused because the store had moved on, and is redone by reading. */
  speculationRedone(): void;
  /** Requests failed without being committed (database unavailable, or a failure of their own). */
  writesFailed(requests: number): void;
}

/** One committed batch: revisions (from, to] and every row written, in revision order. */
export interface Commit {
  from: number;
  to: number;
  rows: readonly LogRow[];
}

export interface WriterStats {
  batches: number;
  mutations: number;
  failedBatches: number;
  /** Batches written in one round trip from the key index, and those whose check failed. */
  speculative: number;
  speculationMisses: number;
  /** Batches whose rows PostgreSQL made from a deleted range (wholeRangeDelete). */
  wholeRangeDeletes: number;
}

interface CurrentRow {
  key: Buffer;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease: string;
  value: Buffer | null;
}

/**
 * The single writer of an instance, with group commit: every mutation waits in one queue; the
 * writer takes all that is queued (bounded), and in one Postgres transaction locks `meta`, reads
 * the keys involved, evaluates the requests in order in memory, writes every row with one
 * set-based statement and commits once. Round trips per batch: two (BEGIN+lock+reads, then
 * write+COMMIT), each pipelined on the slot's own connection; or, when the key index can answer
 * the batch's reads, one (a pgetcd_write call that checks the index was current).
 */
export class Writer {
  readonly stats: WriterStats = { batches: 0, mutations: 0, failedBatches: 0, speculative: 0, speculationMisses: 0, wholeRangeDeletes: 0 };
  private queue: Pending[] = [];
  private running: Promise<void> | undefined;
  private closed = false;
  /** Two connections: while one batch commits, the next one already waits for the meta lock. */
  private readonly slots: Array<Slot | undefined> = [undefined, undefined];
  private slot = 0;
  private commitsInFlight = 0;
  private requestsInFlight = 0;

  constructor(private readonly sql: Sql, private readonly opts: WriterOptions) {}

  submit<T extends Mutation['type']>(m: Extract<Mutation, { type: T }>, bytes = 0): Promise<MutationResults[T]> {
    if (this.closed) return Promise.reject(new StoreError('Stopped'));
    return new Promise<MutationResults[T]>((resolve, reject) => {
      this.queue.push({ m, bytes, resolve: resolve as (r: MutationResult) => void, reject });
      if (!this.running) this.running = this.drain();
    });
  }

  /** Stops taking mutations, finishes what is queued, and releases the connections. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.running) await this.running;
    const slots = this.slots.splice(0, this.slots.length, undefined, undefined);
    await Promise.all(slots.map((s) => s?.sql.end({ timeout: 5 })));
  }

  /**
   * Batches are pipelined two deep: batch N+1 sends BEGIN, the meta lock and its reads as soon
   * as batch N has sent its write and COMMIT. Postgres makes N+1 wait on the lock until N has
   * committed, so N+1 reads N's effects: ordering and gaplessness are the lock's, not ours.
   */
  private async drain(): Promise<void> {
    let committing: Promise<void> | undefined;
    try {
      while (this.queue.length > 0) {
        const batch = this.take();
        const slot = this.slot;
        this.slot ^= 1;
        const ms = batch.map((p) => p.m);
        let prepared: Prepared;
        try {
          prepared = this.speculate(slot, ms) ?? await this.prepare(slot, ms);
        } catch (err) {
          this.discard(slot);
          await committing;
          committing = undefined;
          await this.fail(batch, err);
          continue;
        }
        const commit = this.commit(slot, batch, prepared);
        await committing;
        committing = commit;
      }
      await committing;
    } finally {
      this.running = undefined;
      // Mutations submitted while the last commit was in flight saw `running` set and did not
      // start a drain: pick them up, or they would wait forever.
      if (this.queue.length > 0) this.running = this.drain();
    }
  }

  private take(): Pending[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < this.opts.maxBatch) {
      bytes += this.queue[n]!.bytes;
      if (n > 0 && bytes > this.opts.maxBatchBytes) break;
      n++;
    }
    return this.queue.splice(0, n);
  }

  /** The slot's connection, opened anew when there is none or it was lost. */
  private connection(i: number): Slot {
    const had = this.slots[i];
    if (had && !had.loss.lost) return had;
    if (had) this.discard(i);
    const slot: Slot = { sql: undefined as unknown as Sql, loss: new ConnectionLoss(), ready: undefined };
    slot.sql = this.opts.connect(() => slot.loss.fail(new StoreError('Unavailable', 'connection to PostgreSQL lost')));
    // postgres.js learns the array types when a client first connects, and array parameters
    // are encoded when a query is built: a new client runs one query before the batch's.
    slot.ready = slot.loss.guard(slot.sql`SELECT 1`).then(() => { slot.ready = undefined; });
    slot.ready.catch(() => undefined);
    this.slots[i] = slot;
    return slot;
  }

  /**
   * After a failure: gives up the slot's client. Closing its connection rolls back whatever
   * was open; the next batch on the slot opens a new one.
   */
  private discard(i: number): void {
    const s = this.slots[i];
    this.slots[i] = undefined;
    if (s) s.sql.end({ timeout: 0 }).catch(() => undefined);
  }

  /** Phase 1: lock, read, evaluate. Nothing is written yet. */
  private async prepare(i: number, ms: Mutation[]): Promise<Prepared> {
    const floor = this.opts.guard?.served ?? 0;
    const slot = this.connection(i);
    if (slot.ready) await slot.ready;
    const conn = slot.sql;
    const rs = newReadSet();
    for (const m of ms) collect(rs, m);

    // Every read the batch's outcome depends on must see every batch committed before the meta
    // lock was granted: postgres.js sends a query when it is first awaited, so the statements are
    // built first and then awaited in this order (BEGIN, the lock, then the reads), and each read
    // runs in its own statement after the lock (READ COMMITTED: a fresh snapshot per statement).
    const begin = conn`BEGIN`;
    const meta = conn`SELECT revision, compact_revision, pg_backend_pid() AS pid FROM meta WHERE id = 1 FOR UPDATE` as unknown as Promise<Array<{ revision: number; compact_revision: number; pid: number }>>;
    const rows = readCurrent(conn, rs);
    const leases = readLeases(conn, rs);
    const [, metaRows, currentRows, leaseRows] = await slot.loss.guard(Promise.all([begin, meta, rows, leases]));
    const leaseIds = leaseRows.map((r) => r.id);
    // Ranges at a past revision (inside a Txn) take more than one statement; they are rare, so
    // they simply start once the lock is held, and a compaction that committed before it is seen.
    const histResults = rs.historical.length === 0 ? [] : await slot.loss.guard(
      Promise.all(rs.historical.map((r) => rangeQuery(conn, r).catch((e: unknown) => (isStoreError(e) ? e : Promise.reject(e))))),
    );

    const m = metaRows[0];
    if (!m) throw new Error('meta row missing');
    this.opts.guard?.check(m.revision, floor);
    this.opts.index?.saw(m.revision);
    const live = new Map<string, Entry>();
    // A key may come back more than once (in a point and a range); keep the copy with its value.
    for (const r of currentRows) {
      const k = r.key.toString('latin1');
      const had = live.get(k);
      if (had && had.value.length > 0 && r.value === null) continue;
      live.set(k, { ...r, value: r.value ?? EMPTY, kind: kindOfKey(r.key) });
    }
    const hist = new Map<RangeRequest, RangeResponse | StoreError>();
    rs.historical.forEach((r, i) => hist.set(r, histResults[i]!));

    const applier = new BatchApplier(live, new Set(leaseIds), m.revision, m.compact_revision, hist);
    const results = ms.map((mu) => {
      try {
        return applier.apply(mu);
      } catch (e) {
        if (isStoreError(e)) return e;
        throw e;
      }
    });
    return {
      results, applier, revision: m.revision, compactRevision: m.compact_revision, pid: m.pid, slot, speculative: false, failed: false,
      wholeRange: wholeRangeDelete(ms, applier),
    };
  }

  /**
   * Phase 1 without the database, when the key index can answer every read of the batch: the
   * batch is evaluated on the index, and its commit is one call of pgetcd_write, which checks
   * under the meta lock that the store is still at the revision the index stands at. That check
   * is exact because the index only ever holds committed history (it moves forward by whole
   * committed revision ranges, see KeyIndex), and revision R names one state of the store: if
   * meta says R, the store is the state the batch was evaluated on. A batch is never evaluated on
   * top of a batch whose commit has not finished: that batch may still fail, and a revision
   * count reached by other commits would then pass the check on a history that never happened.
   * While any commit of this writer is in flight (a batch, its redo, a one-by-one retry) the
   * batch takes the reading path instead, which waits for the lock behind it. Undefined when the
   * batch needs the database.
   */
  private speculate(i: number, ms: Mutation[]): Prepared | undefined {
    const index = this.opts.index;
    const slot = this.slots[i];
    if (!index || !slot || slot.loss.lost || slot.ready || !index.ready || this.commitsInFlight > 0) return undefined;
    const base = index.revision;
    const s = speculate(ms, base, (k) => index.get(k));
    if (!s) return undefined;
    return { results: s.results, applier: s.applier, revision: base, compactRevision: s.applier.compactRevision, pid: 0, slot, speculative: true, failed: false, leases: s.leases, reads: s.reads, holes: s.holes };
  }

  /** Write requests queued or in a commit (etcd's pending proposals). */
  get pending(): number {
    return this.queue.length + this.requestsInFlight;
  }

  /** Batches whose commit was sent and has not finished. */
  get committing(): number {
    return this.commitsInFlight;
  }

  /**
   * Phase 2: pgetcd_write (speculative), or one write statement and COMMIT pipelined; then
   * answer the batch.
   */
  private async commit(slot: number, batch: Pending[], p: Prepared): Promise<void> {
    this.commitsInFlight++;
    this.requestsInFlight += batch.length;
    try {
      await this.commitOnce(slot, batch, p);
    } finally {
      this.commitsInFlight--;
      this.requestsInFlight -= batch.length;
      this.opts.onSettled?.();
    }
  }

  private async commitOnce(slot: number, batch: Pending[], p: Prepared): Promise<void> {
    const t0 = performance.now();
    try {
      if (writeFaults.beforeCommit) {
        await writeFaults.beforeCommit({ writer: this, speculative: p.speculative, revision: p.revision, to: p.applier.revision, types: batch.map((q) => q.m.type) });
      }
      const conn = p.slot.sql;
      if (p.speculative) {
        const [row] = await p.slot.loss.guard(writeFunction(conn, p.applier, p.revision, p.leases ?? [], p.reads ?? []));
        fill({ reads: p.reads ?? [], holes: p.holes ?? [] }, (row as { r: Buffer[] } | undefined)?.r ?? []);
      } else {
        const write = writeStatement(conn, p.applier, p.revision, p.compactRevision, p.pid, p.wholeRange);
        await p.slot.loss.guard<unknown>(write ? Promise.all([write, conn`COMMIT`]) : conn`COMMIT`);
      }
    } catch (err) {
      p.failed = true;
      if (p.speculative && (err as { code?: unknown } | null)?.code === STALE) {
        // The store moved on (another instance wrote, or a lease went away): nothing was
        // written. Redo the batch the reading way, on the same connection.
        this.stats.speculationMisses++;
        this.opts.observer?.speculationRedone();
        await this.readAndCommit(slot, batch);
        return;
      }
      if (this.slots[slot] === p.slot) this.discard(slot);
      const replaced = (err as { code?: unknown } | null)?.code === GUARD_FAILED;
      await this.fail(batch, replaced ? new StoreError('Unavailable', 'connection lost during the batch') : err);
      return;
    }
    if (p.speculative) this.stats.speculative++;
    if (p.wholeRange) this.stats.wholeRangeDeletes++;
    this.opts.observer?.batchCommitted(batch.length, batchBytes(batch), (performance.now() - t0) / 1000, p.speculative);
    if (p.applier.revision > p.revision) {
      this.opts.index?.advance(p.revision, p.applier.revision, p.applier.logRows, false);
      this.opts.onCommit?.({ from: p.revision, to: p.applier.revision, rows: p.applier.logRows });
    }
    this.stats.batches++;
    this.stats.mutations += batch.length;
    batch.forEach((q, i) => {
      const r = p.results[i]!;
      if (r instanceof StoreError) q.reject(r);
      else q.resolve(r);
    });
  }

  private async fail(batch: Pending[], err: unknown): Promise<void> {
    this.stats.failedBatches++;
    const unavailable = toUnavailable(err);
    if (unavailable || batch.length === 1) {
      this.opts.observer?.writesFailed(batch.length);
      // Only an unreachable database is worth retrying; a request that failed on its own would
      // fail the same way again, so it gets a final error (etcd answers what it cannot apply
      // with a non-retryable status too).
      const final = unavailable ?? toFinalError(err);
      if (!unavailable) this.opts.log.error({ err, sqlstate: (err as { code?: unknown } | null)?.code }, 'write failed');
      for (const p of batch) p.reject(final);
      return;
    }
    // A data-dependent failure (say a key too long for a B-tree entry) must fail only the
    // request that caused it: run each request of the batch on its own.
    this.opts.log.warn({ err, size: batch.length }, 'write batch failed; retrying requests one by one');
    for (const q of batch) await this.runAlone(q);
  }

  /** A batch the reading way, on one slot: prepare (lock, read, evaluate), then commit. */
  private async readAndCommit(slot: number, batch: Pending[]): Promise<void> {
    let prepared: Prepared;
    try {
      prepared = await this.prepare(slot, batch.map((q) => q.m));
    } catch (err) {
      this.discard(slot);
      await this.fail(batch, err);
      return;
    }
    await this.commit(slot, batch, prepared);
  }

  private async runAlone(q: Pending): Promise<void> {
    const slot = this.slot;
    this.slot ^= 1;
    await this.readAndCommit(slot, [q]);
  }
}

interface Prepared {
  results: Array<MutationResult | StoreError>;
  applier: BatchApplier;
  revision: number;
  compactRevision: number;
  /** The backend that took the meta lock and read the batch's state, and its slot. */
  pid: number;
  slot: Slot;
  /** Evaluated on the key index: committed by pgetcd_write, which checks `revision`. */
  speculative: boolean;
  /** Its commit failed: nothing of it was written. */
  failed: boolean;
  /** Leases the batch attaches keys to (speculative batches: pgetcd_write checks they exist). */
  leases?: string[];
  /** Speculative batches: keys whose values pgetcd_write reads for the answers, and where they go. */
  reads?: Buffer[];
  holes?: KeyValue[];
  /** A batch that is one large DeleteRange: its rows are made in SQL (see wholeRangeDelete). */
  wholeRange?: WholeRange;
}

/** A DeleteRange whose victims are every live key of [key, end) (end undefined: no end), all of one kind. */
interface WholeRange {
  key: Buffer;
  end: Buffer | undefined;
  kind: string;
}

/** Victims from which a DeleteRange's log rows are made by PostgreSQL instead of sent to it. */
export const WHOLE_RANGE_MIN_ROWS = 256;

/**
 * A batch that is a single DeleteRange over many keys of one kind (etcdctl del --prefix, a
 * namespace's leftovers, check perf's cleanup): its log rows are exactly "every live key of the
 * range, in key order, deleted at one revision", which the write statement can make from
 * kv_current itself. Sending them instead costs a parameter per key and column (60,000 keys of
 * 256 bytes: a 31 MB hex text message built and copied by Node). The rows the applier made stay
 * the batch's rows in memory (watch events, the key index, the head cache); the statement checks
 * it wrote as many. Sound because the batch read the range under the meta lock in the same
 * transaction, and every writer of kv_current takes that lock first.
 */
function wholeRangeDelete(ms: Mutation[], a: BatchApplier): WholeRange | undefined {
  const m = ms[0];
  if (ms.length !== 1 || m?.type !== 'delete' || isSingleKey(m.delete.range_end)) return undefined;
  const rows = a.logRows;
  if (rows.length < WHOLE_RANGE_MIN_ROWS || a.leaseInserts.length > 0 || a.leaseDeletes.length > 0) return undefined;
  const kind = rows[0]!.kind;
  for (const r of rows) if (!r.deleted || r.kind !== kind) return undefined;
  return { key: m.delete.key, end: isFromKey(m.delete.range_end) ? undefined : m.delete.range_end, kind };
}

/** A pipeline slot's dedicated connection; `loss` fails its statements once postgres.js reports it closed. */
interface Slot {
  sql: Sql;
  loss: ConnectionLoss;
  /** Set until the client's first connection is up. */
  ready: Promise<void> | undefined;
}

function batchBytes(batch: Pending[]): number {
  let n = 0;
  for (const q of batch) n += q.bytes;
  return n;
}

/**
 * A write that failed for a reason of its own (not the database being away): a store error
 * stands; a value PostgreSQL cannot hold (SQLSTATE class 54, program limit exceeded, e.g. an
 * index entry too large) is etcd's "request is too large"; anything else is an internal error.
 */
function toFinalError(err: unknown): StoreError {
  if (isStoreError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('54')) return new StoreError('RequestTooLarge', code);
  return new StoreError('Internal', typeof code === 'string' ? code : 'unexpected failure');
}

/** SQLSTATE of the write statement's guard (division by zero). */
const GUARD_FAILED = '22012';
/** SQLSTATE pgetcd_write raises when the store is no longer where the batch was evaluated. */
const STALE = 'PGE01';

function readCurrent(conn: Sql, rs: ReadSet): Promise<CurrentRow[]> {
  const parts: Fragment[] = [];
  const cols = conn`c.key, c.create_revision, c.mod_revision, c.version, c.lease::text AS lease`;
  if (rs.points.size > 0) {
    const points = [...rs.points.values()];
    const withValue = points.filter((p) => p.value).map((p) => p.key);
    const value = withValue.length === 0 ? conn`NULL::bytea` : withValue.length === points.length ? conn`c.value`
      : conn`CASE WHEN c.key = ANY(${conn.array(withValue, 17)}::bytea[]) THEN c.value END`;
    parts.push(conn`SELECT ${cols}, ${value} AS value FROM kv_current c WHERE c.key = ANY(${conn.array(points.map((p) => p.key), 17)}::bytea[])`);
  }
  if (rs.ranges.length > 0) {
    parts.push(conn`SELECT ${cols}, CASE WHEN r.v THEN c.value END AS value
      FROM unnest(${conn.array(rs.ranges.map((r) => r.key), 17)}::bytea[], ${conn.array(rs.ranges.map((r) => r.end), 17)}::bytea[],
                  ${conn.array(rs.ranges.map((r) => r.value), 16)}::bool[]) AS r(s, e, v)
      CROSS JOIN LATERAL (SELECT * FROM kv_current c WHERE c.key >= r.s AND (r.e = '\\x'::bytea OR c.key < r.e)) c`);
  }
  if (rs.revokes.size > 0) {
    parts.push(conn`SELECT ${cols}, NULL::bytea AS value FROM kv_current c
      WHERE c.lease = ANY(${conn.array([...rs.revokes], 25)}::int8[]) AND c.lease <> 0 -- lets a generic plan use the partial index`);
  }
  if (parts.length === 0) return Promise.resolve([]);
  let q = parts[0]!;
  for (const p of parts.slice(1)) q = conn`${q} UNION ALL ${p}`;
  return q as unknown as Promise<CurrentRow[]>;
}

/** The batch's leases that exist; a query not yet sent (see prepare), or nothing to ask. */
function readLeases(conn: Sql, rs: ReadSet): Promise<Array<{ id: string }>> {
  if (rs.leases.size === 0) return Promise.resolve([]);
  return conn`SELECT id::text AS id FROM leases WHERE id = ANY(${conn.array([...rs.leases], 25)}::int8[])` as unknown as Promise<Array<{ id: string }>>;
}

/**
 * A batch's rows as eleven array parameters, in the order of kv_log's columns plus `final`: the
 * order both the CTE statement's unnest and pgetcd_write's parameters use.
 */
function rowArrays(conn: Sql, rows: LogRow[]): Fragment {
  return conn`${conn.array(rows.map((r) => r.mod_revision), 20)}::int8[], ${conn.array(rows.map((r) => r.sub), 23)}::int4[],
    ${conn.array(rows.map((r) => r.create_revision), 20)}::int8[], ${conn.array(rows.map((r) => r.prev_revision), 20)}::int8[],
    ${conn.array(rows.map((r) => r.version), 20)}::int8[], ${conn.array(rows.map((r) => r.lease), 25)}::int8[],
    ${conn.array(rows.map((r) => r.deleted), 16)}::bool[], ${conn.array(rows.map((r) => r.kind), 25)}::text[],
    ${conn.array(rows.map((r) => r.key), 17)}::bytea[], ${conn.array(rows.map((r) => r.value), 17)}::bytea[],
    ${conn.array(rows.map((r) => r.final), 16)}::bool[]`;
}

/** A speculative batch: one autocommit call (see migrations/1700000000003_write-function.sql). */
function writeFunction(conn: Sql, a: BatchApplier, expected: number, leases: string[], reads: Buffer[]): Fragment {
  a.markFinal();
  return conn`SELECT pgetcd_write(${expected}, ${a.revision}, ${rowArrays(conn, a.logRows)},
    ${conn.array(leases, 25)}::int8[], ${conn.array(reads, 17)}::bytea[]) AS r`;
}

/** All of a batch's changes in one statement of data-modifying CTEs (one round trip). */
function writeStatement(conn: Sql, a: BatchApplier, revision: number, compactRevision: number, pid: number, whole?: WholeRange): Fragment | undefined {
  const ctes: Fragment[] = [];
  const rows = a.logRows;
  let check: Fragment | undefined;
  if (rows.length > 0 && whole) {
    const rev = rows[0]!.mod_revision;
    const end = whole.end ? conn`AND c.key < ${whole.end}::bytea` : conn``;
    ctes.push(conn`d AS (DELETE FROM kv_current c WHERE c.key >= ${whole.key}::bytea ${end} RETURNING c.key, c.mod_revision)`);
    ctes.push(conn`l AS (INSERT INTO kv_log (mod_revision, sub, create_revision, prev_revision, version, lease, deleted, kind, key, value)
      SELECT ${rev}::int8, (row_number() OVER (ORDER BY d.key) - 1)::int4, 0, d.mod_revision, 0, 0, true, ${whole.kind}::text, d.key, '\\x'::bytea
      FROM d RETURNING 1)`);
    // The range held the keys the batch read (the lock): anything else is a bug, and aborts.
    ctes.push(conn`n AS (SELECT 1 / (count(*) = ${rows.length}::int8)::int AS ok FROM l)`);
    check = conn`, n`;
  } else if (rows.length > 0) {
    a.markFinal();
    // Every row is sent once; kv_current takes each key's final row from the same source.
    ctes.push(conn`src AS (SELECT * FROM unnest(${rowArrays(conn, rows)})
        AS s(mod_revision, sub, create_revision, prev_revision, version, lease, deleted, kind, key, value, final))`);
    ctes.push(conn`l AS (INSERT INTO kv_log (mod_revision, sub, create_revision, prev_revision, version, lease, deleted, kind, key, value)
      SELECT mod_revision, sub, create_revision, prev_revision, version, lease, deleted, kind, key, value FROM src)`);
    ctes.push(conn`u AS (INSERT INTO kv_current (mod_revision, create_revision, version, lease, key, value)
      SELECT mod_revision, create_revision, version, lease, key, value FROM src WHERE final AND NOT deleted
      ON CONFLICT (key) DO UPDATE SET mod_revision = EXCLUDED.mod_revision, create_revision = EXCLUDED.create_revision,
        version = EXCLUDED.version, lease = EXCLUDED.lease, value = EXCLUDED.value)`);
    ctes.push(conn`d AS (DELETE FROM kv_current c USING src WHERE src.final AND src.deleted AND c.key = src.key)`);
  }
  if (a.leaseInserts.length > 0) {
    ctes.push(conn`li AS (INSERT INTO leases (id, ttl, expires_at)
      SELECT id, ttl, now() + ttl * interval '1 second'
      FROM unnest(${conn.array(a.leaseInserts.map((l) => l.id), 25)}::int8[], ${conn.array(a.leaseInserts.map((l) => l.ttl), 20)}::int8[]) AS x(id, ttl))`);
  }
  if (a.leaseDeletes.length > 0) {
    ctes.push(conn`ld AS (DELETE FROM leases WHERE id = ANY(${conn.array(a.leaseDeletes, 25)}::int8[]))`);
  }
  if (a.revision !== revision || a.compactRevision !== compactRevision) {
    ctes.push(conn`m AS (UPDATE meta SET revision = ${a.revision}, compact_revision = ${a.compactRevision} WHERE id = 1)`);
  }
  if (ctes.length === 0) return undefined;
  // The lock and the reads belong to the backend and transaction that prepared the batch. Had
  // the connection been lost and reopened since, this statement would run on a new session
  // outside any transaction: the guard then fails it (division by zero) before anything lands.
  let q = conn`g AS (SELECT 1 / (pg_backend_pid() = ${pid}::int4 AND transaction_timestamp() < statement_timestamp())::int AS ok)`;
  for (const c of ctes) q = conn`${q}, ${c}`;
  return conn`WITH ${q} SELECT g.ok FROM g${check ?? conn``}`;
}
