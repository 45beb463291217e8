import { etcdBehaviour } from '../etcdversion.ts';
import type { Component } from '../server/component.ts';
import type { ServerContext } from '../server/context.ts';
import { watchService } from '../server/watch.ts';
import { Feed, type FeedStats } from './feed.ts';
import { Hub, type HubStats } from './hub.ts';
import {
  CATCHUP_CHUNK_BYTES, CATCHUP_CONCURRENCY, CATCHUP_ROWS, FEED_WINDOW_REVISIONS, GRPC_OVERHEAD_BYTES, LISTEN_LIVENESS_CHECK_MS,
  RING_MAX_BYTES, RING_MAX_EVENTS,
} from './limits.ts';
import { Session } from './session.ts';
import { localEvents } from './local.ts';
import type { FeedEvent } from './types.ts';
import type { IndexChange } from '../store/keyindex.ts';

function indexChanges(events: FeedEvent[]): IndexChange[] {
  return events.map((e) => {
    const kv = e.event.kv;
    return {
      key: kv.key, deleted: e.event.type === 1, create_revision: kv.create_revision, mod_revision: kv.mod_revision,
      version: kv.version, lease: kv.lease, value: kv.value, keyStr: e.keyStr,
    };
  });
}

export interface WatchStats {
  feed: FeedStats;
  hub: HubStats;
  revision: number;
  compactRevision: number;
  streams: number;
  syncedWatchers: number;
  unsyncedWatchers: number;
  ringEvents: number;
  ringBytes: number;
}

export interface WatchComponent extends Component {
  stats(): WatchStats;
  /** How long the LISTEN connection has been down (ms); undefined while it is up. */
  listenerDownForMs(): number | undefined;
}

/**
 * The Watch service: a NOTIFY-fed change feed (one LISTEN connection), an in-memory hub that
 * fans events out to watchers, and one session per gRPC stream.
 */
export function createWatchComponent(ctx: ServerContext): WatchComponent {
  const log = ctx.log.child({ mod: 'watch' });
  const hub = new Hub({
    sql: ctx.sql, log, ringEvents: RING_MAX_EVENTS, ringBytes: RING_MAX_BYTES,
    catchupConcurrency: CATCHUP_CONCURRENCY, catchupRows: CATCHUP_ROWS, catchupChunkBytes: CATCHUP_CHUNK_BYTES,
    ...(ctx.store.standbys ? { standbyRead: (f, revisionOf) => ctx.store.readOnStandby(f, revisionOf) } : {}),
  });
  const feed = new Feed({
    sql: ctx.sql, target: ctx.target, log, window: FEED_WINDOW_REVISIONS,
    livenessCheckMs: LISTEN_LIVENESS_CHECK_MS,
    guard: ctx.store.guard,
    onLost: (err) => ctx.health?.suspect(err),
    onBatch: (b) => {
      ctx.store.guard.serve(b.to);
      hub.onBatch(b);
      ctx.store.observeLog(b.from, b.to, indexChanges(b.events));
    },
    onNotify: (rev) => ctx.store.observeRevision(rev),
    ...(ctx.metrics.enabled ? { onDelivered: (events: number, lagMs?: number) => ctx.metrics.watchDelivered(events, lagMs === undefined ? undefined : lagMs / 1000) } : {}),
    localBusy: () => ctx.store.writing,
  });
  // Our own commits need not wait for the notification's round trip.
  ctx.store.onCommit((c) => feed.committed(c.from, c.to, () => localEvents(c.rows, (k) => hub.ring.last(k), c.versionOf)));
  ctx.store.onSettled(() => feed.settled());
  const sessionOpts = {
    progressIntervalMs: ctx.cfg.progressNotifyIntervalMs,
    maxResponseBytes: ctx.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    maxQueuedBytes: ctx.cfg.watchMaxQueuedBytes,
    etcd: etcdBehaviour(ctx.cfg.etcdVersion),
    log,
  };
  const service = watchService(ctx, (sink) => new Session(hub, feed, sink, sessionOpts));
  // The database lost revisions that watchers may have seen: they must list again.
  ctx.store.guard.onRegression((r) => {
    hub.ring.reset(hub.revision);
    service.cancelAll(`etcdserver: watch canceled: the database lost revisions ${r.storeRevision + 1}..${r.servedRevision} in a failover; list again`, r.servedRevision);
  });
  return {
    services: { Watch: service.impl },
    definitions: { Watch: service.definition },
    start: async () => {
      await feed.start();
      hub.init(feed.revision, feed.compactRevision);
      // The feed now reports every revision after its start: the index can load.
      void ctx.store.loadIndex();
    },
    stop: async () => {
      service.closeAll();
      hub.stop();
      await feed.stop();
    },
    listenerDownForMs: () => feed.downForMs,
    stats: () => ({
      feed: { ...feed.stats }, hub: { ...hub.stats }, revision: hub.revision, compactRevision: hub.compactRevision, streams: service.streams,
      syncedWatchers: hub.syncedCount, unsyncedWatchers: hub.unsyncedCount,
      ringEvents: hub.ring.length, ringBytes: hub.ring.byteSize,
    }),
  };
}
