import * as grpc from '@grpc/grpc-js';
import { dbSize } from '../maintenance/dbsize.ts';
import { hashAll, hashKV } from '../maintenance/hash.ts';
import { etcdBehaviour } from '../etcdversion.ts';
import { vacuum } from '../maintenance/vacuum.ts';
import { MemberRegistry } from '../members/registry.ts';
import { clusterService, unimplemented } from './cluster.ts';
import type { Component } from './component.ts';
import { RAFT_TERM, unary, type ServerContext } from './context.ts';
import { CLUSTER_ERRORS, RpcError } from './errors.ts';
import type { Int64 } from './wire.ts';

interface WireAlarmRequest { action: number; memberID: Int64; alarm: number }
/** What etcd 3.6 reports as its storage version (the schema of its data dir). */
const STORAGE_VERSION_36 = '3.6.0';

interface WireHashKVRequest { revision: Int64 }
interface WireMoveLeaderRequest { targetID: Int64 }
interface WireDowngradeRequest { action: number; version: string }

const ALARM_ACTIVATE = 1;
const ALARM_NONE = 0;
const DOWNGRADE_CANCEL = 2;

/** Maintenance (Status, Alarm, Hash...) and Cluster (MemberList...) for one pgetcd instance. */
export function createMaintenanceComponent(ctx: ServerContext): Component {
  const registry = new MemberRegistry({
    target: ctx.target,
    sql: ctx.sql,
    log: ctx.log.child({ mod: 'members' }),
    self: { id: ctx.memberId, name: ctx.cfg.name, clientUrls: ctx.cfg.advertiseClientUrls },
    retryMs: 1000,
    onLost: (err) => ctx.health?.suspect(err),
  });
  return {
    services: { Maintenance: maintenanceService(ctx), Cluster: clusterService(ctx, registry) },
    start: () => registry.start(),
    stop: () => registry.stop(),
  };
}

function maintenanceService(ctx: ServerContext): grpc.UntypedServiceImplementation {
  const log = ctx.log.child({ mod: 'maintenance' });
  const current = async (): Promise<number> => (await ctx.store.currentRevision()).revision;
  const behaviour = etcdBehaviour(ctx.cfg.etcdVersion);
  const v36 = behaviour.v36Fields;
  return {
    Status: unary(ctx, async () => {
      const [revision, size] = await Promise.all([current(), dbSize(ctx.sql)]);
      const index = String(revision);
      return {
        header: ctx.header(revision),
        version: ctx.cfg.etcdVersion,
        dbSize: String(size.dbSize),
        dbSizeInUse: String(size.dbSizeInUse),
        leader: ctx.memberId,
        // No Raft log: the store's revision stands in for the committed and applied index.
        raftIndex: index,
        raftAppliedIndex: index,
        raftTerm: String(RAFT_TERM),
        errors: [],
        isLearner: false,
        // etcd 3.6's fields: the storage schema version, the backend quota (pgetcd has none: 0),
        // no downgrade in progress.
        ...(v36 ? { storageVersion: STORAGE_VERSION_36, dbSizeQuota: '0', downgradeInfo: { enabled: false, targetVersion: '' } } : {}),
      };
    }),

    // pgetcd raises no alarms (PostgreSQL manages its own space): GET and DEACTIVATE answer an
    // empty list, as etcd does with none active; activating a real alarm cannot be honoured.
    Alarm: unary(ctx, async (req: WireAlarmRequest) => {
      if (req.action === ALARM_ACTIVATE && req.alarm !== ALARM_NONE) {
        throw unimplemented('pgetcd: alarms cannot be activated: PostgreSQL manages disk space and data integrity');
      }
      // etcd 3.4 sends no header here (3.5 added it).
      return behaviour.alarmHeader ? { header: ctx.header(await current()), alarms: [] } : { alarms: [] };
    }),

    Defragment: unary(ctx, async () => {
      const t = Date.now();
      log.info('defragment: vacuuming pgetcd tables');
      await vacuum(ctx.sql);
      log.info({ ms: Date.now() - t }, 'defragment finished');
      return {}; // etcd's DefragmentResponse carries no header
    }),

    Hash: unary(ctx, async () => {
      const h = await hashAll(ctx.sql, ctx.target);
      return { header: ctx.header(h.revision), hash: h.hash };
    }),

    HashKV: unary(ctx, async (req: WireHashKVRequest) => {
      const h = await hashKV(ctx.target, Number(req.revision));
      return {
        header: ctx.header(h.revision), hash: h.hash, compact_revision: String(h.compactRevision),
        ...(v36 ? { hash_revision: String(h.revision) } : {}),
      };
    }),

    Snapshot: (call: grpc.ServerWritableStream<object, object>) => {
      call.emit('error', {
        code: grpc.status.UNIMPLEMENTED,
        details: 'pgetcd: snapshots are PostgreSQL backups (pg_dump/pg_basebackup)',
      });
    },

    // This member is the leader of its one-member view: moving leadership to itself succeeds
    // at once, any other target is not a member.
    MoveLeader: unary(ctx, async (req: WireMoveLeaderRequest) => {
      if (req.targetID !== ctx.memberId) throw new RpcError(CLUSTER_ERRORS.BadLeaderTransferee);
      return {}; // etcd's MoveLeaderResponse carries no header
    }),

    Downgrade: unary(ctx, async (req: WireDowngradeRequest) => {
      if (req.action === DOWNGRADE_CANCEL) throw new RpcError(CLUSTER_ERRORS.NoInflightDowngrade);
      throw unimplemented('pgetcd: downgrades do not apply: the reported etcd version is set with --etcd-version');
    }),
  };
}
