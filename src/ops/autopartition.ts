import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';
import type { PartitionMap } from '../store/partitionmap.ts';
import type { LogRow } from '../store/apply.ts';
import { addPartition, resolveKind } from './partitions.ts';

const RETRY_MS = 5 * 60_000;

export interface AutoPartitionOptions {
  /** A kind gets a partition once this many of its rows sit in the default partition. */
  rows: number;
  /** Opens a one-connection pool for a partition change (it holds session locks). */
  connect: () => Sql;
  sql: Sql;
  map: PartitionMap;
  log: Logger;
}

/**
 * --auto-partition: watches this instance's commits; a kind without a partition of its own whose
 * rows in kv_log_default pass the threshold gets one, created in the background by the same
 * online procedure as `pgetcd partitions add` (one change at a time across all instances: the
 * procedure's advisory lock). Needs the role to own kv_log; without DDL rights it logs once and
 * stops trying.
 */
export class AutoPartitioner {
  /** Rows of each unpartitioned kind: counted in the database once, then from commits. */
  private counts = new Map<string, number>();
  private counting = new Set<string>();
  private queue: string[] = [];
  private running: Promise<void> | undefined;
  private disabled = false;
  private stopped = false;
  /** Kinds whose add failed, with when: tried again after RETRY_MS. */
  private failedAt = new Map<string, number>();

  constructor(private readonly opts: AutoPartitionOptions) {
    opts.map.onChange(() => { for (const k of this.counts.keys()) if (opts.map.has(k)) this.counts.delete(k); });
  }

  observe(rows: readonly LogRow[]): void {
    if (this.disabled || this.stopped) return;
    for (const r of rows) {
      const kind = r.kind;
      if (kind === '' || this.opts.map.has(kind)) continue;
      const n = this.counts.get(kind);
      if (n === undefined) {
        this.countInDatabase(kind);
        continue;
      }
      this.counts.set(kind, n + 1);
      this.check(kind);
    }
  }

  private countInDatabase(kind: string): void {
    if (this.counting.has(kind)) return;
    this.counting.add(kind);
    void (async () => {
      try {
        const { prefix } = resolveKind(kind);
        const end = Buffer.from(prefix);
        end[end.length - 1]! += 1;
        // The key range uses kv_log_default's primary key; the kind filter keeps it exact.
        const [r] = (await this.opts.sql`SELECT count(*)::int8 AS n FROM kv_log_default WHERE key >= ${prefix} AND key < ${end} AND kind = ${kind}`) as unknown as Array<{ n: number }>;
        this.counts.set(kind, (this.counts.get(kind) ?? 0) + r!.n);
        this.check(kind);
      } catch (err) {
        this.opts.log.warn({ err, kind }, 'counting a kind\'s rows failed');
      } finally {
        this.counting.delete(kind);
      }
    })();
  }

  private check(kind: string): void {
    if ((this.counts.get(kind) ?? 0) < this.opts.rows || this.queue.includes(kind)) return;
    if (Date.now() - (this.failedAt.get(kind) ?? -Infinity) < RETRY_MS) return;
    this.queue.push(kind);
    this.running ??= this.drain().finally(() => { this.running = undefined; });
  }

  private async drain(): Promise<void> {
    while (this.queue.length && !this.stopped && !this.disabled) {
      const kind = this.queue[0]!;
      if (!this.opts.map.has(kind)) await this.add(kind);
      this.queue.shift();
      this.counts.delete(kind);
    }
  }

  private async add(kind: string): Promise<void> {
    const one = this.opts.connect();
    try {
      const r = await addPartition(one, kind, { origin: 'auto' });
      this.opts.log.info({ kind, table: r.table, rows: r.rowsMoved, seconds: r.seconds, swapMs: r.swapMs }, 'partition created for a kind (--auto-partition)');
      await this.opts.map.reload();
    } catch (err) {
      const e = err as { code?: string; message?: string };
      if (e.code === '42501') {
        this.disabled = true;
        this.opts.log.warn({ kind }, '--auto-partition needs a role that owns kv_log (DDL); partitions will not be created automatically');
      } else if (/already has partition|another partition change is running/.test(e.message ?? '')) {
        this.opts.log.debug({ kind, reason: e.message }, 'auto-partition skipped');
      } else {
        this.failedAt.set(kind, Date.now());
        this.opts.log.warn({ err, kind }, 'creating a partition failed; tried again in 5 minutes');
      }
    } finally {
      await one.end({ timeout: 5 });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}
