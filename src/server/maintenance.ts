import * as grpc from '@grpc/grpc-js';
import { dbSize } from '../maintenance/dbsize.ts';
import { ALARM_NONE, alarmName, type AlarmMember } from '../maintenance/alarms.ts';
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

const ALARM_GET = 0;
const ALARM_ACTIVATE = 1;
const ALARM_DEACTIVATE = 2;
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
  const wireAlarm = (a: AlarmMember): { memberID: string; alarm: number } => ({ memberID: a.memberId, alarm: a.alarm });
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
        // One line per active alarm, as Go prints an AlarmMember (etcdctl endpoint status shows them).
        errors: ctx.alarms.list().map((a) => `memberID:${a.memberId} alarm:${alarmName(a.alarm)} `),
        isLearner: false,
        // etcd 3.6's fields: the storage schema version, the backend quota (the configured value,
        // etcd's default for 0), no downgrade in progress.
        ...(v36 ? {
          storageVersion: STORAGE_VERSION_36, dbSizeQuota: String(ctx.quota.quota ?? ctx.cfg.quotaBackendBytes),
          downgradeInfo: { enabled: false, targetVersion: '' },
        } : {}),
      };
    }),

    // etcd's alarms, kept in the database for every instance (maintenance/alarms.ts): GET lists
    // them (all, or one type), ACTIVATE raises one for the member named, DEACTIVATE clears it
    // (etcdctl alarm disarm sends one per listed alarm). Each answers the alarms it touched.
    Alarm: unary(ctx, async (req: WireAlarmRequest) => {
      let alarms: AlarmMember[] = [];
      if (req.action === ALARM_GET) {
        await ctx.alarms.reload(); // another instance may have raised one a moment ago
        alarms = ctx.alarms.list(req.alarm);
      } else if (req.action === ALARM_ACTIVATE) {
        if (req.alarm !== ALARM_NONE) alarms = [await ctx.alarms.activate(req.memberID, req.alarm)];
      } else if (req.action === ALARM_DEACTIVATE) {
        const cleared = await ctx.alarms.deactivate(req.memberID, req.alarm);
        if (cleared) {
          alarms = [cleared];
          // The next write is judged on the size now, not on the sample that raised the alarm.
          await ctx.quota.refresh().catch(() => undefined);
        }
      }
      const body = { alarms: alarms.map(wireAlarm) };
      // etcd 3.4 sends no header here (3.5 added it).
      return behaviour.alarmHeader ? { header: ctx.header(await current()), ...body } : body;
    }),

    // A plain VACUUM; past the quota (etcd's NOSPACE runbook: compact, defrag, disarm) the tables
    // are rewritten so their size comes down, since PostgreSQL keeps freed space in the files.
    Defragment: unary(ctx, async () => {
      const t = Date.now();
      await ctx.quota.refresh().catch(() => undefined);
      const full = ctx.quota.exceeded;
      log.info({ full }, full ? 'defragment: past the quota: rewriting pgetcd tables (VACUUM FULL)' : 'defragment: vacuuming pgetcd tables');
      await vacuum(ctx.sql, { full });
      const size = await ctx.quota.refresh().catch(() => undefined);
      log.info({ ms: Date.now() - t, dbSizeBytes: size }, 'defragment finished');
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
