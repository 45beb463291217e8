import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { clientTls, type Config } from './config.ts';
import { CertWatcher, serverOptions } from './net/tls.ts';
import { EmbeddedPostgres } from './db/embedded.ts';
import { checkSchema, migrate } from './db/migrate.ts';
import { DbHealth } from './db/health.ts';
import { createSql, type Sql } from './db/sql.ts';
import { describeTarget, type PgTarget } from './db/target.ts';
import { resolveEndpoint, resolveReadEndpoints } from './db/endpoint.ts';
import { Standbys } from './store/standbys.ts';
import { waitForDatabase } from './db/wait.ts';
import type { Logger } from './log.ts';
import { makeHeaderFn, type ServerContext } from './server/context.ts';
import { kvService } from './server/kv.ts';
import { authService } from './server/auth.ts';
import { preEncodedDefinition } from './server/watchcodec.ts';
import { loadEtcdProto, withRequestSizes, type ServiceName } from './server/proto.ts';
import type { Component } from './server/component.ts';
import { createWatchComponent } from './watch/index.ts';
import { createLeaseComponent } from './lease/index.ts';
import { createMaintenanceComponent } from './server/maintenance.ts';
import { Store } from './store/store.ts';
import { listen, type Listener } from './net/listener.ts';
import { Observability } from './observability.ts';
import { instrumentService } from './server/instrument.ts';
import { autoCompactionPolicy, createOpsComponent } from './ops/component.ts';
import { healthService } from './server/health.ts';
import { ping } from './db/ping.ts';
import { allocatorTuned, MALLOC_TUNABLES } from './alloc.ts';
import { StoreError } from './store/errors.ts';
import { etcdBehaviour } from './etcdversion.ts';
import { AlarmStore } from './maintenance/alarms.ts';
import { BackendQuota } from './maintenance/quota.ts';

/** How often the database's size (dbSize) is measured against --quota-backend-bytes. */
const QUOTA_SAMPLE_MS = 1000;

/** Headroom over max-request-bytes for gRPC framing, as etcd allows. */
const GRPC_OVERHEAD_BYTES = 512 * 1024;

/**
 * One pgetcd instance: its database (embedded or external), store, and gRPC server. Several
 * instances may share one database.
 */
export class App {
  readonly store: Store;
  readonly ports: number[] = [];
  /** Client-port listeners (gRPC and HTTP/1.1 on each), closed on shutdown. */
  readonly listeners: Listener[] = [];
  /** Reloads the client port's certificates when their files change (https:// only). */
  certWatcher: CertWatcher | undefined;
  /** Components whose start() succeeded, stopped in reverse on shutdown. */
  readonly started: Component[] = [];
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly observability: Observability,
    readonly cfg: Config,
    readonly log: Logger,
    readonly target: PgTarget,
    readonly sql: Sql,
    readonly server: grpc.Server,
    readonly embedded: EmbeddedPostgres | undefined,
    readonly ctx: ServerContext,
    readonly components: Component[],
  ) {
    this.store = ctx.store;
  }

  static async start(cfg: Config, log: Logger): Promise<App> {
    autoCompactionPolicy(cfg); // a bad setting fails before anything starts
    // First: /livez answers and /readyz says why not ready while the database starts.
    const obs = await Observability.start(cfg, log);
    try {
      return await App.startWith(obs, cfg, log);
    } catch (err) {
      await obs.stop();
      throw err;
    }
  }

  private static async startWith(obs: Observability, cfg: Config, log: Logger): Promise<App> {
    let embedded: EmbeddedPostgres | undefined;
    let target: PgTarget;
    if (cfg.endpoint) {
      target = resolveEndpoint(cfg.endpoint, {
        caFile: cfg.datastoreCafile, certFile: cfg.datastoreCertfile, keyFile: cfg.datastoreKeyfile, passwordFile: cfg.datastorePasswordFile,
      });
      await waitForDatabase(target, cfg.datastoreWaitTimeout, log.child({ mod: 'db' }));
    } else {
      embedded = new EmbeddedPostgres({ dataDir: cfg.dataDir, port: cfg.embeddedPort, tcp: cfg.embeddedTcp, log: log.child({ mod: 'embedded-pg' }) });
      target = await embedded.start();
    }
    log.info({ database: describeTarget(target), embedded: !!embedded }, 'using PostgreSQL');
    if (!allocatorTuned()) {
      log.info({ GLIBC_TUNABLES: MALLOC_TUNABLES }, 'GLIBC_TUNABLES is not set: large lists cost more CPU in page faults (bin/pgetcd.js, npm start and the image set it; see src/alloc.ts)');
    }
    try {
      await checkSchema(target, cfg.migrate);
      if (cfg.migrate) await migrate(target, log.child({ mod: 'migrate' }));
      obs.health.markMigrated();
      const sql = createSql(target, { max: 16 });
      const [meta] = (await sql`SELECT cluster_id::text AS cluster_id FROM meta WHERE id = 1`.catch(async (err: unknown) => {
        await sql.end({ timeout: 1 });
        throw err;
      })) as unknown as Array<{ cluster_id: string }>;
      if (!meta) {
        await sql.end({ timeout: 1 });
        throw new Error('meta row missing: run the migrations');
      }
      const clusterId = BigInt.asUintN(64, BigInt(meta.cluster_id)).toString();
      const memberId = memberIdFor(clusterId, cfg);
      const standbys = await startStandbys(cfg, clusterId, log);
      const store = new Store(sql, {
        log: log.child({ mod: 'store' }),
        maxTxnOps: cfg.maxTxnOps,
        maxRequestBytes: cfg.maxRequestBytes,
        maxBatch: cfg.maxBatch,
        maxBatchBytes: cfg.maxBatchBytes,
        keyIndex: cfg.keyIndex,
        cacheMaxBytes: cfg.cacheMaxBytes,
        legacySortOrder: !etcdBehaviour(cfg.etcdVersion).rejectUnknownSortOrder,
        observer: obs.metrics,
        connect: (onclose) => createSql(target, { max: 1, onclose, maxLifetime: 0 }),
        ...(standbys ? { standbys } : {}),
      });
      const alarms = new AlarmStore(sql, log.child({ mod: 'alarms' }));
      const quota = new BackendQuota({
        sql, alarms, log: log.child({ mod: 'quota' }), memberId, quotaBackendBytes: cfg.quotaBackendBytes, sampleMs: QUOTA_SAMPLE_MS,
      });
      const ctx: ServerContext = {
        cfg, sql, target, store, log, clusterId, memberId, metrics: obs.metrics, alarms, quota,
        maxRequestBytes: cfg.maxRequestBytes, header: makeHeaderFn(clusterId, memberId),
        health: new DbHealth({
          target, log: log.child({ mod: 'health' }), probeMs: 250, probeTimeoutMs: 2000,
          unavailable: () => new StoreError('Unavailable', 'PostgreSQL primary unreachable'),
        }),
      };
      const server = new grpc.Server({
        'grpc.max_receive_message_length': cfg.maxRequestBytes + GRPC_OVERHEAD_BYTES,
        'grpc.max_send_message_length': 2 ** 31 - 1,
        'grpc.keepalive_permit_without_calls': 1,
        // channelz bookkeeping costs CPU on every call; nothing here reads it.
        'grpc.enable_channelz': 0,
        'grpc.http2.min_ping_interval_without_data_ms': 5000,
      });
      const proto = loadEtcdProto();
      // etcd's gRPC metrics wrap every service where it is registered (off: nothing is wrapped).
      const addService = (def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void => {
        if (!obs.metrics.enabled) return server.addService(def, impl);
        server.addService(...instrumentService(def, impl, (type, service, method) => obs.metrics.grpcMethod(type, service, method)));
      };
      addService(withRequestSizes(preEncodedDefinition(proto.services.KV)), kvService(ctx));
      addService(withRequestSizes(proto.services.Auth), authService(ctx));
      const health = healthService({
        probe: () => ping(sql, 2000).then(() => undefined, (err: unknown) => (err as Error).message),
        log: log.child({ mod: 'grpc-health' }),
      });
      server.addService(health.definition, health.implementation);
      const watch = createWatchComponent(ctx);
      const components = [watch, createLeaseComponent(ctx), createMaintenanceComponent(ctx), createOpsComponent(ctx), health.component];
      for (const c of components) {
        for (const [name, impl] of Object.entries(c.services)) {
          addService(withRequestSizes(c.definitions?.[name as ServiceName] ?? proto.services[name as ServiceName]), impl);
        }
      }
      const app = new App(obs, cfg, log, target, sql, server, embedded, ctx, components);
      try {
        await alarms.start();
        await quota.start();
        for (const c of components) {
          await c.start();
          app.started.push(c);
        }
        obs.attach({
          sql,
          listenerDownForMs: () => watch.listenerDownForMs(),
          indexReady: () => !cfg.keyIndex || store.indexStats().revision >= 0,
          alarms: () => alarms.list(),
          sources: {
            revision: () => watch.stats().revision,
            compactRevision: () => watch.stats().compactRevision,
            keys: () => (cfg.keyIndex && store.indexStats().revision >= 0 ? store.indexStats().keys : undefined),
            pendingWrites: () => store.writer.pending,
            ...(standbys ? { standbys: () => standbys.stats() } : {}),
            watch: () => {
              const w = watch.stats();
              return {
                streams: w.streams, synced: w.syncedWatchers, unsynced: w.unsyncedWatchers, notifications: w.feed.notifications,
                reconnects: w.feed.reconnects, reads: w.feed.reads, catchupReads: w.hub.dbCatchupReads, localDeliveries: w.feed.localDeliveries,
              };
            },
          },
        });
        const tlsSettings = clientTls(cfg);
        if (tlsSettings) app.certWatcher = new CertWatcher(tlsSettings, log.child({ mod: 'tls' }));
        const tlsOpts = tlsSettings ? { options: serverOptions(tlsSettings), watcher: app.certWatcher } : undefined;
        for (const url of cfg.listenClientUrls) {
          const l = await listen(url, { grpc: server, http: obs.handle, log: log.child({ mod: 'net' }), ...(url.startsWith('https://') ? { tls: tlsOpts } : {}) });
          app.listeners.push(l);
          app.ports.push(l.port);
          log.info({ listen: url, port: l.port }, 'serving etcd gRPC');
        }
      } catch (err) {
        await app.stop();
        throw err;
      }
      return app;
    } catch (err) {
      await embedded?.stop();
      throw err;
    }
  }

  /** Graceful: stop taking calls, finish the running write batch, close streams, stop Postgres. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.log.info('shutting down');
    // Components first: they end their streams (watch, keep-alive) with a clean status, so the
    // gRPC server's graceful shutdown does not wait on them.
    for (const c of [...this.started].reverse()) await c.stop().catch((err: unknown) => this.log.warn({ err }, 'stopping a component failed'));
    const closed = Promise.all(this.listeners.map((l) => l.close(5000)));
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { this.server.forceShutdown(); resolve(); }, 5000);
      this.server.tryShutdown(() => { clearTimeout(t); resolve(); });
    });
    await closed;
    this.certWatcher?.close();
    this.ctx.health?.stop();
    await this.ctx.quota.stop();
    await this.ctx.alarms.stop();
    await this.store.close();
    await this.store.standbys?.close();
    await this.sql.end({ timeout: 5 });
    await this.embedded?.stop();
    await this.observability.stop();
    this.log.info('stopped');
  }
}

/** How often each standby's replayed revision is read: well inside --read-max-lag. */
const STANDBY_POLL_MS = 200;

/** Pools on the --read-endpoint standbys, polled for their replay position; undefined without any. */
async function startStandbys(cfg: Config, clusterId: string, log: Logger): Promise<Standbys | undefined> {
  if (cfg.readEndpoint.length === 0) return undefined;
  const targets = resolveReadEndpoints(cfg.readEndpoint, {
    caFile: cfg.datastoreCafile, certFile: cfg.datastoreCertfile, keyFile: cfg.datastoreKeyfile, passwordFile: cfg.datastorePasswordFile,
  });
  const standbys = new Standbys(targets.map((t) => ({ name: describeTarget(t), sql: createSql(t, { max: 8 }) })), {
    log: log.child({ mod: 'standbys' }), maxLagMs: cfg.readMaxLag, pollMs: Math.min(STANDBY_POLL_MS, Math.max(10, cfg.readMaxLag / 4)), clusterId,
  });
  await standbys.start();
  log.info({ standbys: standbys.stats().map((s) => ({ standby: s.standby, up: s.up })), maxLagMs: cfg.readMaxLag }, 'reads may go to hot standbys');
  return standbys;
}

/** A stable uint64 member ID from the cluster ID and this member's name and URLs. */
function memberIdFor(clusterId: string, cfg: Config): string {
  const h = createHash('sha256').update(`${clusterId}/${cfg.name}/${cfg.advertiseClientUrls.join(',')}`).digest();
  return h.readBigUInt64BE(0).toString();
}
