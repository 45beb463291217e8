import { ConfigError, type Config } from '../config.ts';
import { createSql } from '../db/sql.ts';
import type { Component } from '../server/component.ts';
import type { ServerContext } from '../server/context.ts';
import { PartitionMap } from '../store/partitionmap.ts';
import { AutoCompactor, parseRetention, type AutoCompactionPolicy } from './autocompact.ts';
import { AutoPartitioner } from './autopartition.ts';

/**
 * The server's housekeeping: physical-compaction pacing (and resuming a removal an earlier
 * process left unfinished), --auto-compaction-*, --auto-partition. No gRPC services.
 */
/** The auto-compaction policy the settings ask for; a bad retention is a ConfigError. */
export function autoCompactionPolicy(cfg: Config): AutoCompactionPolicy | undefined {
  try {
    return parseRetention(cfg.autoCompactionMode, cfg.autoCompactionRetention);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

export function createOpsComponent(ctx: ServerContext): Component {
  const { cfg, store } = ctx;
  const log = ctx.log.child({ mod: 'ops' });
  const policy = autoCompactionPolicy(cfg);
  let compactor: AutoCompactor | undefined;
  let map: PartitionMap | undefined;
  let partitioner: AutoPartitioner | undefined;
  return {
    services: {},
    async start() {
      store.compactor.pacing = { ...store.compactor.pacing, rowsPerSecond: cfg.compactionRowsPerSecond, chunkRevisions: cfg.compactionBatchRevisions };
      // A removal that a killed process left half done resumes now, not at the next Compact.
      store.compactor.run().catch((err: unknown) => log.warn({ err }, 'resuming physical compaction failed'));
      if (policy) {
        compactor = new AutoCompactor({
          policy,
          revision: async () => (await store.currentRevision()).revision,
          compact: async (revision) => { await store.compact(revision, false); },
          connect: () => createSql(ctx.target, { max: 1, maxLifetime: 0 }),
          log: log.child({ part: 'auto-compaction' }),
        });
        await compactor.begin();
        compactor.start();
        log.info({ mode: policy.mode, retention: cfg.autoCompactionRetention }, 'auto-compaction on');
      }
      if (cfg.autoPartition) {
        map = new PartitionMap(ctx.sql, log.child({ part: 'partition-map' }));
        await map.start();
        const ap = new AutoPartitioner({
          rows: cfg.autoPartitionRows, sql: ctx.sql, map, log: log.child({ part: 'auto-partition' }),
          connect: () => createSql(ctx.target, { max: 1, maxLifetime: 0 }),
        });
        partitioner = ap;
        store.onCommit((c) => ap.observe(c.rows));
      }
    },
    async stop() {
      await partitioner?.stop();
      await map?.stop();
      await compactor?.stop();
    },
  };
}
