import type { Check, HealthReport, HealthSource } from '../http/types.ts';
import type { Logger } from '../log.ts';

/** etcd's /health reason for the first active alarm it is not told to exclude. */
export function alarmReason(alarm: string): string {
  return alarm === 'NOSPACE' || alarm === 'CORRUPT' ? `ALARM ${alarm}` : 'ALARM UNKNOWN';
}

/** What the monitor asks the parts of a running instance; each is attached once that part runs. */
export interface HealthParts {
  /** Resolves when PostgreSQL answers; rejects when it does not. */
  ping?: () => Promise<void>;
  /** How long the watch feed's LISTEN connection has been down; undefined while it is up. */
  listenerDownForMs?: () => number | undefined;
  /** The key index loaded (always true without one). */
  indexReady?: () => boolean;
  /** Active alarms by etcd's AlarmType name (NOSPACE, CORRUPT). */
  alarms?: () => string[];
}

/** Told what the monitor found (the metrics: etcd_server_has_leader, pgetcd_watch_listener_up). */
export interface HealthObserver {
  databaseReachable(ok: boolean): void;
  listenerConnected(ok: boolean): void;
  /** One /health answer (etcd_server_health_success / _failures). */
  healthChecked?(ok: boolean): void;
}

export interface HealthMonitorOptions {
  log: Logger;
  observer?: HealthObserver;
  /** A ping slower than this counts as unreachable. */
  pingTimeoutMs: number;
  /** A listener down for longer than this makes /health fail (it reconnects by itself). */
  listenerGraceMs: number;
  /** Background probe period (keeps etcd_server_has_leader current between health checks). */
  probeIntervalMs: number;
}

/**
 * Health of one instance, as etcd's /health and Kubernetes' probes ask it. The database check is
 * single-flight: probes that arrive together share one query.
 */
export class HealthMonitor implements HealthSource {
  private parts: HealthParts = {};
  private migrated = false;
  private pinging: Promise<string | undefined> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastReachable: boolean | undefined = true;

  constructor(private readonly opts: HealthMonitorOptions) {}

  attach(parts: HealthParts): void {
    this.parts = { ...this.parts, ...parts };
  }

  /** Migrations ran (or were skipped on purpose): the schema is there. */
  markMigrated(): void {
    this.migrated = true;
  }

  start(): void {
    if (this.timer) return;
    const tick = (): void => {
      void this.database().finally(() => {
        if (!this.timer) return;
        this.timer = setTimeout(tick, this.opts.probeIntervalMs);
        this.timer.unref();
      });
      this.listener();
    };
    this.timer = setTimeout(tick, 0);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  async health(excludeAlarms?: ReadonlySet<string>): Promise<HealthReport> {
    const report = await this.check(excludeAlarms);
    this.opts.observer?.healthChecked?.(report.ok);
    return report;
  }

  private async check(excludeAlarms?: ReadonlySet<string>): Promise<HealthReport> {
    const alarm = (this.parts.alarms?.() ?? []).find((a) => !excludeAlarms?.has(a));
    if (alarm !== undefined) return { ok: false, reason: alarmReason(alarm) };
    if (!this.parts.ping) return { ok: false, reason: 'STARTING' };
    const db = await this.database();
    if (db) return { ok: false, reason: db };
    const listener = this.listener();
    if (listener) return { ok: false, reason: listener };
    return { ok: true, reason: '' };
  }

  async ready(): Promise<Check[]> {
    const checks: Check[] = [];
    checks.push(this.migrated ? { name: 'migrations', ok: true } : { name: 'migrations', ok: false, reason: 'not run yet' });
    const db = this.parts.ping ? await this.database() : 'not connected yet';
    checks.push(db ? { name: 'database', ok: false, reason: db.toLowerCase() } : { name: 'database', ok: true });
    const index = this.parts.indexReady?.();
    checks.push(index ? { name: 'key_index', ok: true } : { name: 'key_index', ok: false, reason: index === undefined ? 'not started' : 'loading' });
    const down = this.parts.listenerDownForMs?.();
    checks.push(!this.parts.listenerDownForMs ? { name: 'watch_listener', ok: false, reason: 'not started' }
      : down === undefined ? { name: 'watch_listener', ok: true } : { name: 'watch_listener', ok: false, reason: `disconnected for ${Math.round(down)} ms` });
    return checks;
  }

  live(): Check[] {
    return [{ name: 'serving', ok: true }];
  }

  /** Undefined when the database answers; else the reason /health gives. */
  private database(): Promise<string | undefined> {
    const ping = this.parts.ping;
    if (!ping) return Promise.resolve('STARTING');
    this.pinging ??= ping().then(
      () => undefined,
      (err: unknown) => {
        if (this.lastReachable !== false) this.opts.log.warn({ reason: (err as Error).message }, 'health: PostgreSQL does not answer');
        return 'DATABASE UNREACHABLE';
      },
    ).then((reason) => {
      this.pinging = undefined;
      const ok = reason === undefined;
      if (ok && this.lastReachable === false) this.opts.log.info('health: PostgreSQL answers again');
      this.lastReachable = ok;
      this.opts.observer?.databaseReachable(ok);
      return reason;
    });
    return this.pinging;
  }

  /** Undefined when the watch listener is up or has been down only briefly; else the reason. */
  private listener(): string | undefined {
    const f = this.parts.listenerDownForMs;
    if (!f) return undefined;
    const down = f();
    this.opts.observer?.listenerConnected(down === undefined);
    return down !== undefined && down > this.opts.listenerGraceMs ? 'WATCH LISTENER DISCONNECTED' : undefined;
  }
}
