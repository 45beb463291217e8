import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { exponentialBuckets } from './buckets.ts';
import { GrpcMetrics, type GrpcType, type MethodStats } from './grpc.ts';
import { openMetricsView, wantsOpenMetrics, type Exposition } from './render.ts';
import type { DatabaseSample, MetricSources, StandbyNumbers } from './sources.ts';

export type { MethodStats, GrpcType } from './grpc.ts';
export type { DatabaseSample, MetricSources, WatchNumbers } from './sources.ts';

/**
 * etcd's --metrics: "basic" leaves out the gRPC handling-time histogram, "extensive" (pgetcd's
 * default, which etcd's dashboards and alerts need) includes it, "off" records nothing.
 */
export type MetricsMode = 'off' | 'basic' | 'extensive';

export interface MetricsOptions {
  mode: MetricsMode;
  /** Reported as etcd_server_version{server_version}. */
  etcdVersion: string;
  /** Reported as etcd_server_quota_backend_bytes. */
  quotaBackendBytes: number;
}

/**
 * One instance's metrics: the prom-client registry, etcd's families (same names, types, help
 * and buckets as etcd 3.5) and pgetcd's own. Other layers call the small methods below and never
 * import prom-client; numbers they already keep are read through `sources` at scrape time.
 */
export class Metrics {
  readonly enabled: boolean;
  readonly registry = new Registry();
  readonly grpc: GrpcMetrics;
  private sources: MetricSources = {};
  private sample: DatabaseSample | undefined;
  private openMetrics: Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE> | undefined;
  private reachable = false;
  private listenerUp = false;
  private committed = 0;

  private readonly leaderChanges: Counter;
  private readonly proposalsFailed: Counter;
  private readonly puts: Counter;
  private readonly deletes: Counter;
  private readonly ranges: Counter;
  private readonly txns: Counter;
  private readonly leasesGranted: Counter;
  private readonly leasesRevoked: Counter;
  private readonly leasesRenewed: Counter;
  private readonly leasesExpired: Counter;
  private readonly backendCommit: Histogram;
  private readonly batchRequests: Histogram;
  private readonly batchBytes: Histogram;
  private readonly commitSeconds: Histogram<'path'>;
  private readonly redos: Counter;
  private readonly notifyLag: Histogram;
  private readonly deliveryEvents: Histogram;
  private readonly expiryLag: Histogram;
  private readonly compactionRows: Counter;
  private readonly compactionSeconds: Histogram;
  private readonly healthSuccess: Counter;
  private readonly healthFailures: Counter;

  constructor(opts: MetricsOptions) {
    this.enabled = opts.mode !== 'off';
    const registers = [this.registry];
    const self = this;
    this.grpc = new GrpcMetrics(registers, opts.mode === 'extensive');
    if (this.enabled) collectDefaultMetrics({ register: this.registry });

    const gauge = (name: string, help: string, read: () => number | undefined): void => {
      new Gauge({ name, help, registers, collect() { const v = read(); if (v !== undefined) this.set(v); } });
    };
    const counter = (name: string, help: string): Counter => new Counter({ name, help, registers });
    const computedCounter = (name: string, help: string, read: () => number | undefined): void => {
      new Counter({ name, help, registers, collect() { const v = read(); this.reset(); if (v !== undefined) this.inc(v); } });
    };
    const histogram = (name: string, help: string, buckets: number[]): Histogram => new Histogram({ name, help, buckets, registers });

    // etcd server (server/etcdserver/metrics.go). The database is the leader: reachable or not.
    gauge('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', () => (this.reachable ? 1 : 0));
    gauge('etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', () => (this.reachable ? 1 : 0));
    this.leaderChanges = counter('etcd_server_leader_changes_seen_total', 'The number of leader changes seen.');
    // etcd keeps these three as gauges (raft indexes); a proposal here is a write request.
    gauge('etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.', () => this.committed);
    gauge('etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.', () => this.committed);
    gauge('etcd_server_proposals_pending', 'The current number of pending proposals to commit.', () => this.sources.pendingWrites?.());
    this.proposalsFailed = counter('etcd_server_proposals_failed_total', 'The total number of failed proposals seen.');
    new Gauge({
      name: 'etcd_server_version', help: "Which version is running. 1 for 'server_version' label with current version.",
      labelNames: ['server_version'], registers,
    }).set({ server_version: opts.etcdVersion }, 1);
    this.leasesExpired = counter('etcd_debugging_server_lease_expired_total', 'The total number of expired leases.');
    // etcdhttp/health.go: every /health answer.
    this.healthSuccess = counter('etcd_server_health_success', 'The total number of successful health checks');
    this.healthFailures = counter('etcd_server_health_failures', 'The total number of failed health checks');
    // apply/metrics.go: 1 per active alarm, by the raising member's ID (hex, as etcd prints IDs).
    new Gauge({
      name: 'etcd_debugging_server_alarms',
      help: "Alarms for every member in cluster. 1 for 'server_id' label with current ID. 2 for 'alarm_type' label with type of this alarm",
      labelNames: ['server_id', 'alarm_type'], registers,
      collect() {
        this.reset();
        for (const a of self.sources.alarms?.() ?? []) {
          this.set({ server_id: BigInt(a.memberId).toString(16), alarm_type: a.alarm }, 1);
        }
      },
    });
    // server/storage/metrics.go
    gauge('etcd_server_quota_backend_bytes', 'Current backend storage quota size in bytes.', () => opts.quotaBackendBytes);

    // mvcc (server/storage/mvcc/metrics.go)
    this.ranges = counter('etcd_mvcc_range_total', 'Total number of ranges seen by this member.');
    this.puts = counter('etcd_mvcc_put_total', 'Total number of puts seen by this member.');
    this.deletes = counter('etcd_mvcc_delete_total', 'Total number of deletes seen by this member.');
    this.txns = counter('etcd_mvcc_txn_total', 'Total number of txns seen by this member.');
    gauge('etcd_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes.', () => this.sample?.dbSize);
    gauge('etcd_mvcc_db_total_size_in_use_in_bytes', 'Total size of the underlying database logically in use in bytes.', () => this.sample?.dbSizeInUse);
    gauge('etcd_debugging_mvcc_keys_total', 'Total number of keys.', () => this.sources.keys?.() ?? this.sample?.keys);
    gauge('etcd_debugging_mvcc_current_revision', 'The current revision of store.', () => this.sources.revision?.() ?? this.sample?.revision);
    gauge('etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', () => this.sources.compactRevision?.() ?? this.sample?.compactRevision);
    gauge('etcd_debugging_mvcc_watch_stream_total', 'Total number of watch streams.', () => this.sources.watch?.().streams);
    gauge('etcd_debugging_mvcc_watcher_total', 'Total number of watchers.', () => {
      const w = this.sources.watch?.();
      return w && w.synced + w.unsynced;
    });
    gauge('etcd_debugging_mvcc_slow_watcher_total', 'Total number of unsynced slow watchers.', () => this.sources.watch?.().unsynced);

    // lease (server/lease/metrics.go)
    this.leasesGranted = counter('etcd_debugging_lease_granted_total', 'The total number of granted leases.');
    this.leasesRevoked = counter('etcd_debugging_lease_revoked_total', 'The total number of revoked leases.');
    this.leasesRenewed = counter('etcd_debugging_lease_renewed_total', 'The number of renewed leases seen by the leader.');

    // backend (server/storage/backend/metrics.go): the write batch's commit in PostgreSQL.
    this.backendCommit = histogram('etcd_disk_backend_commit_duration_seconds', 'The latency distributions of commit called by backend.',
      exponentialBuckets(0.001, 2, 14));

    // pgetcd's own.
    this.batchRequests = histogram('pgetcd_write_batch_requests', 'Write requests committed together in one PostgreSQL transaction.',
      exponentialBuckets(1, 2, 11));
    this.batchBytes = histogram('pgetcd_write_batch_bytes', 'Encoded request bytes of one committed write batch.',
      exponentialBuckets(64, 4, 11));
    this.commitSeconds = new Histogram({
      name: 'pgetcd_write_commit_duration_seconds',
      help: 'Commit latency of write batches: path="one_round_trip" (evaluated on the key index, one pgetcd_write call) or "read_then_write" (lock and read first).',
      labelNames: ['path'], buckets: exponentialBuckets(0.0005, 2, 14), registers,
    });
    this.redos = counter('pgetcd_write_speculation_redos_total', 'One-round-trip batches the database refused (the store had moved on) and that were redone by reading first.');
    this.notifyLag = histogram('pgetcd_watch_notify_delivery_lag_seconds', 'Time from a NOTIFY of another instance\'s commit arriving to its events reaching the watch hub.',
      exponentialBuckets(0.0005, 2, 14));
    this.deliveryEvents = histogram('pgetcd_watch_events_per_delivery', 'Events per batch handed to the watch hub (one notification\'s read, or one local commit).',
      exponentialBuckets(1, 4, 8));
    computedCounter('pgetcd_watch_notifications_total', 'NOTIFY messages received on the LISTEN connection.', () => this.sources.watch?.().notifications);
    computedCounter('pgetcd_watch_log_reads_total', 'Reads of kv_log by the change feed (after a notification or a reconnect).', () => this.sources.watch?.().reads);
    computedCounter('pgetcd_watch_local_deliveries_total', 'Local commits delivered to watchers without reading kv_log.', () => this.sources.watch?.().localDeliveries);
    computedCounter('pgetcd_watch_catchup_reads_total', 'Reads of kv_log by watchers catching up from history older than the in-memory ring.', () => this.sources.watch?.().catchupReads);
    computedCounter('pgetcd_watch_listener_reconnects_total', 'Times the LISTEN connection was lost and reconnecting began.', () => this.sources.watch?.().reconnects);
    const standbyGauge = (name: string, help: string, pick: (s: StandbyNumbers) => number): void => {
      new Gauge({
        name, help, labelNames: ['standby'], registers,
        collect() {
          this.reset();
          for (const s of self.sources.standbys?.() ?? []) this.set({ standby: s.standby }, pick(s));
        },
      });
    };
    standbyGauge('pgetcd_read_standby_up', 'Whether the --read-endpoint standby takes reads (answers, in recovery, same cluster).', (s) => (s.up ? 1 : 0));
    standbyGauge('pgetcd_read_standby_lag_seconds', 'How long the primary has had a revision the standby has not replayed (0: caught up).', (s) => s.lagMs / 1000);
    standbyGauge('pgetcd_read_standby_behind_revisions', 'Revisions the standby is behind the highest this instance knows the primary reached.', (s) => s.behindRevisions);
    new Counter({
      name: 'pgetcd_read_standby_requests_total',
      help: 'Reads sent to a standby by result: served there, behind (had not replayed the revision: the primary answered) or failed (the primary answered).',
      labelNames: ['standby', 'result'], registers,
      collect() {
        this.reset();
        for (const s of self.sources.standbys?.() ?? []) {
          this.inc({ standby: s.standby, result: 'served' }, s.served);
          this.inc({ standby: s.standby, result: 'behind' }, s.behind);
          this.inc({ standby: s.standby, result: 'failed' }, s.failed);
        }
      },
    });
    gauge('pgetcd_watch_listener_up', 'Whether the LISTEN connection that feeds watchers is connected (1) or not (0).', () => (this.listenerUp ? 1 : 0));
    new Gauge({
      name: 'pgetcd_db_connections',
      help: 'Connections of every pgetcd instance to this database by state (pg_stat_activity, sampled in the background); state="waiting" counts those waiting on a lock.',
      labelNames: ['state'], registers,
      collect() {
        this.reset();
        for (const c of self.sample?.connections ?? []) this.set({ state: c.state }, c.count);
      },
    });
    this.expiryLag = histogram('pgetcd_lease_expiry_lag_seconds', 'Time from a lease\'s expiry to its revocation by the expiring instance.',
      exponentialBuckets(0.01, 2, 14));
    this.compactionRows = counter('pgetcd_compaction_rows_removed_total', 'kv_log rows removed by physical compaction.');
    this.compactionSeconds = histogram('pgetcd_compaction_duration_seconds', 'Duration of one physical compaction run.',
      exponentialBuckets(0.01, 2, 16));
    const partitionGauge = (name: string, help: string, pick: (p: DatabaseSample['partitions'][number]) => number): void => {
      new Gauge({
        name, help, labelNames: ['partition'], registers,
        collect() {
          this.reset();
          for (const p of self.sample?.partitions ?? []) this.set({ partition: p.partition }, pick(p));
        },
      });
    };
    partitionGauge('pgetcd_kv_log_partition_rows', 'Rows per kv_log partition (estimate from PostgreSQL statistics, sampled in the background).', (p) => p.rows);
    partitionGauge('pgetcd_kv_log_partition_bytes', 'Bytes per kv_log partition with its indexes and TOAST (sampled in the background).', (p) => p.bytes);
    gauge('pgetcd_database_sample_timestamp_seconds', 'Unix time of the last background sample of database sizes.', () => this.sampledAt);
  }

  private sampledAt: number | undefined;

  /** Numbers the metrics read at scrape time (see MetricSources). */
  setSources(s: MetricSources): void {
    this.sources = { ...this.sources, ...s };
  }

  /** The record a gRPC method's wrapper counts into. */
  grpcMethod(type: GrpcType, service: string, method: string): MethodStats {
    return this.grpc.method(type, service, method);
  }

  /** The database answered (true) or did not (false); a change to reachable counts as a leader change. */
  databaseReachable(ok: boolean): void {
    if (ok && !this.reachable && this.enabled) this.leaderChanges.inc();
    this.reachable = ok;
  }

  listenerConnected(ok: boolean): void {
    this.listenerUp = ok;
  }

  /** /health answered healthy (true) or not. */
  healthChecked(ok: boolean): void {
    if (!this.enabled) return;
    (ok ? this.healthSuccess : this.healthFailures).inc();
  }

  /** One KV request executed: its range, put and delete operations (a txn: those of the branch taken). */
  kvOps(ranges: number, puts: number, deletes: number): void {
    if (!this.enabled) return;
    if (ranges + puts + deletes > 1) this.txns.inc();
    if (ranges) this.ranges.inc(ranges);
    if (puts) this.puts.inc(puts);
    if (deletes) this.deletes.inc(deletes);
  }

  batchCommitted(requests: number, bytes: number, seconds: number, oneRoundTrip: boolean): void {
    if (!this.enabled) return;
    this.committed += requests;
    this.batchRequests.observe(requests);
    this.batchBytes.observe(bytes);
    this.backendCommit.observe(seconds);
    this.commitSeconds.observe({ path: oneRoundTrip ? 'one_round_trip' : 'read_then_write' }, seconds);
  }

  speculationRedone(): void {
    if (this.enabled) this.redos.inc();
  }

  writesFailed(requests: number): void {
    if (this.enabled) this.proposalsFailed.inc(requests);
  }

  leaseGranted(): void {
    if (this.enabled) this.leasesGranted.inc();
  }

  leaseRevoked(): void {
    if (this.enabled) this.leasesRevoked.inc();
  }

  leaseRenewed(n = 1): void {
    if (this.enabled && n > 0) this.leasesRenewed.inc(n);
  }

  /** A lease was revoked by expiry (`lagSeconds` after it expired, when known). */
  leaseExpired(lagSeconds?: number): void {
    if (!this.enabled) return;
    this.leasesExpired.inc();
    if (lagSeconds !== undefined) this.expiryLag.observe(Math.max(0, lagSeconds));
  }

  /** The change feed handed `events` to the hub; `lagSeconds` since the NOTIFY that asked for them. */
  watchDelivered(events: number, lagSeconds?: number): void {
    if (!this.enabled) return;
    this.deliveryEvents.observe(events);
    if (lagSeconds !== undefined) this.notifyLag.observe(lagSeconds);
  }

  compacted(rows: number, seconds: number): void {
    if (!this.enabled) return;
    this.compactionRows.inc(rows);
    this.compactionSeconds.observe(seconds);
  }

  /** The background sampler's latest numbers. */
  sampled(s: DatabaseSample): void {
    this.sample = s;
    this.sampledAt = Date.now() / 1000;
  }

  /** The exposition for a scrape: OpenMetrics when the scraper asks for it, else Prometheus text. */
  async render(accept?: string): Promise<Exposition> {
    if (wantsOpenMetrics(accept)) {
      this.openMetrics ??= openMetricsView(this.registry);
      return { contentType: this.openMetrics.contentType, body: await this.openMetrics.metrics() };
    }
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
