import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';

/** Channel the kv_partitions trigger notifies on every change of the map. */
export const PARTITIONS_CHANNEL = 'pgetcd_partitions';

/**
 * This instance's copy of the partition map (table kv_partitions): which kinds have a kv_log
 * partition of their own. Reloaded whenever the map changes (NOTIFY) and whenever the LISTEN
 * connection (re)connects, so a notification missed during a reconnect is not missed for long.
 */
export class PartitionMap {
  private kinds = new Set<string>();
  private listening: { unlisten(): Promise<void> } | undefined;
  private loading: Promise<void> | undefined;
  private readonly changeListeners: Array<() => void> = [];

  constructor(private readonly sql: Sql, private readonly log: Logger) {}

  async start(): Promise<void> {
    await this.reload();
    this.listening = await this.sql.listen(PARTITIONS_CHANNEL, () => { void this.reload(); }, () => { void this.reload(); });
  }

  async stop(): Promise<void> {
    await this.listening?.unlisten().catch(() => undefined);
    this.listening = undefined;
    await this.loading;
  }

  /** True when `kind` has a partition of its own (as of the last reload). */
  has(kind: string): boolean {
    return this.kinds.has(kind);
  }

  list(): string[] {
    return [...this.kinds].sort();
  }

  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  reload(): Promise<void> {
    const run = async (): Promise<void> => {
      try {
        const rows = (await this.sql`SELECT kind FROM kv_partitions`) as unknown as Array<{ kind: string }>;
        this.kinds = new Set(rows.map((r) => r.kind));
        for (const l of this.changeListeners) l();
      } catch (err) {
        this.log.warn({ err }, 'reading the partition map failed');
      }
    };
    const next = (this.loading ?? Promise.resolve()).then(run);
    this.loading = next;
    return next;
  }
}
