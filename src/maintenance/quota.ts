import { DEFAULT_QUOTA_BYTES } from '../config.ts';
import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';
import { ALARM_CORRUPT, ALARM_NOSPACE, type AlarmStore } from './alarms.ts';
import { dbTotalSize } from './dbsize.ts';

/** etcd warns at start above this (its MaxQuotaBytes, "a suggested maximum"). */
export const MAX_SUGGESTED_QUOTA_BYTES = 8 * 1024 * 1024 * 1024;

/** The quota in bytes --quota-backend-bytes asks for: etcd's default for 0, none (undefined) below 0. */
export function effectiveQuota(configured: number): number | undefined {
  if (configured < 0) return undefined;
  return configured === 0 ? DEFAULT_QUOTA_BYTES : configured;
}

/** Why a request is refused: etcd's ErrNoSpace or ErrCorrupt. */
export type QuotaRefusal = 'NoSpace' | 'Corrupt';

export interface QuotaOptions {
  sql: Sql;
  alarms: AlarmStore;
  log: Logger;
  /** This instance's member ID: NOSPACE is raised in its name, as each etcd member raises its own. */
  memberId: string;
  /** --quota-backend-bytes as configured (0: etcd's default, < 0: no quota). */
  quotaBackendBytes: number;
  /** How often the database size is measured (ms). */
  sampleMs: number;
}

/**
 * etcd's backend quota and its alarms, for the request handlers: a request that would add data
 * (a put, a txn with a put in either branch, a lease grant) is refused with "database space
 * exceeded" while a NOSPACE alarm is active, and raises NOSPACE itself when the database's size
 * plus the request's cost reaches the quota. Every write (deletes, compaction and lease revokes
 * too) is refused while CORRUPT is active; reads are not, as in etcd.
 *
 * The size is etcd's: the bytes on disk of pgetcd's tables (Status's dbSize,
 * etcd_mvcc_db_total_size_in_bytes), free space inside them included, as etcd counts its file.
 * It is measured every `sampleMs`; a request the sample says is over the quota measures again
 * before it is refused, so a stale sample never refuses a write after space was given back.
 */
export class BackendQuota {
  readonly quota: number | undefined;
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private measuring: Promise<number> | undefined;

  constructor(private readonly opts: QuotaOptions) {
    this.quota = effectiveQuota(opts.quotaBackendBytes);
  }

  async start(): Promise<void> {
    if (this.quota === undefined) {
      this.opts.log.info({ quotaBackendBytes: this.opts.quotaBackendBytes }, 'backend quota disabled');
      return;
    }
    if (this.quota > MAX_SUGGESTED_QUOTA_BYTES) this.opts.log.warn({ quotaBytes: this.quota }, 'quota exceeds the 8 GiB etcd suggests as a maximum');
    await this.measure().catch(() => undefined);
    const tick = (): void => {
      void this.measure().catch(() => undefined).finally(() => {
        if (!this.timer) return;
        this.timer = setTimeout(tick, this.opts.sampleMs);
        this.timer.unref();
      });
    };
    this.timer = setTimeout(tick, this.opts.sampleMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.measuring?.catch(() => undefined);
  }

  /** The size of the last measurement (bytes). */
  get size(): number {
    return this.bytes;
  }

  /** The quota is set and the last measurement reached it (Defragment then rewrites tables). */
  get exceeded(): boolean {
    return this.quota !== undefined && this.bytes >= this.quota;
  }

  /**
   * Undefined when a write costing `cost` bytes (0: adds nothing, e.g. a delete) may run; else a
   * promise of why it is refused (NOSPACE raised first when this request is the one that finds
   * the database full). Synchronous on the common path: no promise, no query. Reads never come
   * here: etcd serves ranges and read-only txns outside its applier, CORRUPT included.
   */
  admit(cost: number): Promise<QuotaRefusal | undefined> | undefined {
    const alarms = this.opts.alarms;
    if (alarms.has(ALARM_CORRUPT)) return Promise.resolve('Corrupt');
    if (cost === 0 || this.quota === undefined) return undefined;
    if (alarms.has(ALARM_NOSPACE)) return Promise.resolve('NoSpace');
    if (this.bytes + cost < this.quota) return undefined;
    return this.overQuota(cost);
  }

  /** Measures now (after a defragmentation, or when an alarm is disarmed). */
  refresh(): Promise<number> {
    return this.measure();
  }

  private async overQuota(cost: number): Promise<QuotaRefusal | undefined> {
    const quota = this.quota!;
    const size = await this.measure();
    if (size + cost < quota) return undefined;
    if (!this.opts.alarms.has(ALARM_NOSPACE)) {
      this.opts.log.warn({ quotaBytes: quota, dbSizeBytes: size, requestCost: cost }, 'request exceeds the backend quota; raising alarm NOSPACE');
      await this.opts.alarms.activate(this.opts.memberId, ALARM_NOSPACE);
    }
    return 'NoSpace';
  }

  /** Single-flight: requests over the quota at the same moment share one query. */
  private measure(): Promise<number> {
    this.measuring ??= dbTotalSize(this.opts.sql).then(
      (size) => { this.bytes = size; return size; },
    ).finally(() => { this.measuring = undefined; });
    return this.measuring;
  }
}
