import { clientTls, DEFAULT_QUOTA_BYTES, type Config } from './config.ts';
import { CertWatcher, serverOptions } from './net/tls.ts';
import type { Sql } from './db/sql.ts';
import { ping } from './db/ping.ts';
import { HealthMonitor } from './health/monitor.ts';
import { buildHttpApp, type HttpApp, type HttpHandler } from './http/app.ts';
import { listenHttp, type HttpListener } from './http/listen.ts';
import type { Logger } from './log.ts';
import { sampleStore } from './maintenance/sample.ts';
import { alarmName, type AlarmMember } from './maintenance/alarms.ts';
import { Metrics, type MetricSources } from './metrics/index.ts';

/** A database that does not answer a health ping within this long is unreachable. */
const PING_TIMEOUT_MS = 5000;
/** The LISTEN session reconnects by itself (watch/listen.ts); down longer than this fails /health. */
const LISTENER_GRACE_MS = 5000;
/** How often the background probe refreshes etcd_server_has_leader. */
const PROBE_INTERVAL_MS = 5000;

/** The running parts the health checks and metrics read, once they run. */
export interface ObservedParts {
  sql: Sql;
  sources: MetricSources;
  listenerDownForMs?: () => number | undefined;
  indexReady: () => boolean;
  /** The cluster's active alarms (/health fails on them, as etcd's does). */
  alarms: () => AlarmMember[];
}

/**
 * Metrics, health and the HTTP side of one instance. Started first, so /livez answers and
 * /readyz says "not ready" while the database starts and migrations run; told about the other
 * parts as they come up (attach).
 */
export class Observability {
  readonly listeners: HttpListener[] = [];
  /** Reloads the https:// metrics listeners' certificates. */
  certWatcher: CertWatcher | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;

  private constructor(
    private readonly cfg: Config,
    private readonly log: Logger,
    readonly metrics: Metrics,
    readonly health: HealthMonitor,
    readonly http: HttpApp,
  ) {}

  static async start(cfg: Config, log: Logger): Promise<Observability> {
    const metrics = new Metrics({
      mode: cfg.metrics,
      etcdVersion: cfg.etcdVersion,
      quotaBackendBytes: cfg.quotaBackendBytes || DEFAULT_QUOTA_BYTES, // etcd: the configured value, its default for 0
    });
    const health = new HealthMonitor({
      log: log.child({ mod: 'health' }), observer: metrics,
      pingTimeoutMs: PING_TIMEOUT_MS, listenerGraceMs: LISTENER_GRACE_MS, probeIntervalMs: PROBE_INTERVAL_MS,
    });
    const http = await buildHttpApp({ log, health, etcdVersion: cfg.etcdVersion, ...(metrics.enabled ? { metrics } : {}) });
    const o = new Observability(cfg, log, metrics, health, http);
    try {
      const tlsSettings = clientTls(cfg);
      const secure = tlsSettings && cfg.listenMetricsUrls.some((u) => u.startsWith('https://'))
        ? { options: serverOptions(tlsSettings), watcher: (o.certWatcher = new CertWatcher(tlsSettings, log.child({ mod: 'tls' }))) }
        : undefined;
      for (const url of cfg.listenMetricsUrls) o.listeners.push(await listenHttp(url, http.handle, log.child({ mod: 'http' }), url.startsWith('https://') ? secure : undefined));
    } catch (err) {
      await o.stop();
      throw err;
    }
    return o;
  }

  /** Serves one HTTP/1.1 request (for the client port's HTTP side). */
  get handle(): HttpHandler {
    return this.http.handle;
  }

  /** The database is up and migrated, the store and watch feed run: health and metrics read them now. */
  attach(parts: ObservedParts): void {
    // The database has just answered the start-up queries.
    this.metrics.databaseReachable(true);
    this.health.attach({
      ping: () => ping(parts.sql, PING_TIMEOUT_MS),
      indexReady: parts.indexReady,
      alarms: () => parts.alarms().map((a) => alarmName(a.alarm)),
      ...(parts.listenerDownForMs ? { listenerDownForMs: parts.listenerDownForMs } : {}),
    });
    this.health.start();
    this.metrics.setSources({ ...parts.sources, alarms: () => parts.alarms().map((a) => ({ memberId: a.memberId, alarm: alarmName(a.alarm) })) });
    if (!this.metrics.enabled) return;
    const tick = (): void => {
      this.sampling = sampleStore(parts.sql).then(
        (s) => this.metrics.sampled(s),
        (err: unknown) => this.log.debug({ err }, 'sampling database sizes failed'),
      ).finally(() => {
        this.sampling = undefined;
        if (!this.sampler) return;
        this.sampler = setTimeout(tick, this.cfg.metricsSampleIntervalMs);
        this.sampler.unref();
      });
    };
    this.sampler = setTimeout(tick, 0);
    this.sampler.unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.sampler);
    this.sampler = undefined;
    this.health.stop();
    await this.sampling;
    await Promise.all(this.listeners.map((l) => l.close()));
    this.certWatcher?.close();
    await this.http.close();
  }
}
