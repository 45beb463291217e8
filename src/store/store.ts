import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';
import { Compactor } from './compactor.ts';
import { StoreError } from './errors.ts';
import { dbCall } from './pgerrors.ts';
import { rangeQuery } from './reader.ts';
import type {
  CompactResponse, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantResult, LeaseRevokeResult,
  PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
} from './types.ts';
import { checkDelete, checkPut, checkRange, checkTxn, isTxnReadOnly } from './validate.ts';
import { Writer } from './writer.ts';

export interface StoreOptions {
  log: Logger;
  maxTxnOps: number;
  /** etcd's --max-request-bytes: a write whose encoded size is larger is "request is too large". */
  maxRequestBytes: number;
  maxBatch: number;
  maxBatchBytes: number;
  /** Opens a dedicated single-connection client for the writer (see WriterOptions.connect). */
  connect: (onClose: () => void) => Sql;
}

/**
 * etcd's KV semantics over PostgreSQL. Reads go straight to SQL (one statement, one snapshot);
 * every mutation goes through the one group-commit writer. `bytes` is the write's encoded size
 * as etcd counts it (its raft entry): checked against maxRequestBytes after the request's own
 * checks, as etcd orders them, and used to bound batches.
 */
export class Store {
  readonly writer: Writer;
  readonly compactor: Compactor;
  private readonly commitListeners: Array<(revision: number) => void> = [];

  constructor(readonly sql: Sql, private readonly opts: StoreOptions) {
    this.writer = new Writer(sql, {
      log: opts.log.child({ mod: 'writer' }),
      maxBatch: opts.maxBatch,
      maxBatchBytes: opts.maxBatchBytes,
      connect: opts.connect,
      onCommit: (rev) => { for (const l of this.commitListeners) l(rev); },
    });
    this.compactor = new Compactor(sql, opts.log.child({ mod: 'compactor' }));
  }

  /** Called after every local commit that created revisions (the watch hub listens here). */
  onCommit(listener: (revision: number) => void): void {
    this.commitListeners.push(listener);
  }

  async range(req: RangeRequest): Promise<RangeResponse> {
    checkRange(req);
    return await dbCall(() => rangeQuery(this.sql, req));
  }

  put(req: PutRequest, bytes = 0): Promise<PutResponse> {
    checkPut(req);
    this.checkSize(bytes);
    return this.writer.submit({ type: 'put', put: req }, bytes);
  }

  deleteRange(req: DeleteRangeRequest, bytes = 0): Promise<DeleteRangeResponse> {
    checkDelete(req);
    this.checkSize(bytes);
    return this.writer.submit({ type: 'delete', delete: req }, bytes);
  }

  txn(req: TxnRequest, bytes = 0): Promise<TxnResponse> {
    checkTxn(req, this.opts.maxTxnOps);
    // etcd sends a txn through raft, and so limits its size, only when it may write.
    if (!isTxnReadOnly(req)) this.checkSize(bytes);
    return this.writer.submit({ type: 'txn', txn: req }, bytes);
  }

  private checkSize(bytes: number): void {
    if (bytes > this.opts.maxRequestBytes) throw new StoreError('RequestTooLarge');
  }

  async compact(revision: number, physical: boolean): Promise<CompactResponse> {
    const resp = await this.writer.submit({ type: 'compact', revision });
    const done = this.compactor.run().catch((err: unknown) => {
      this.opts.log.warn({ err }, 'physical compaction failed; it resumes on the next compaction');
    });
    if (physical) await done;
    return resp;
  }

  leaseGrant(id: string, ttl: number): Promise<LeaseGrantResult> {
    return this.writer.submit({ type: 'leaseGrant', id, ttl });
  }

  leaseRevoke(id: string): Promise<LeaseRevokeResult> {
    return this.writer.submit({ type: 'leaseRevoke', id });
  }

  async currentRevision(): Promise<{ revision: number; compactRevision: number }> {
    const [m] = (await dbCall(() => this.sql`SELECT revision, compact_revision FROM meta WHERE id = 1`)) as unknown as Array<{ revision: number; compact_revision: number }>;
    if (!m) throw new StoreError('Unavailable', 'meta row missing');
    return { revision: m.revision, compactRevision: m.compact_revision };
  }

  async close(): Promise<void> {
    await this.writer.close();
  }
}
