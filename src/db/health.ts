import type { Logger } from '../log.ts';
import { connectPrimary } from './session.ts';
import type { PgTarget } from './target.ts';

export interface HealthOptions {
  target: PgTarget;
  log: Logger;
  /** Pause between two probes while the primary is unreachable. */
  probeMs: number;
  /** Bound on one probe's connection attempt. */
  probeTimeoutMs: number;
  /** The error a request gets while the database is down (the store's UNAVAILABLE). */
  unavailable: () => Error;
}

/**
 * Whether the primary is reachable, learned from failures rather than by polling: a lost
 * connection anywhere (a request's error, the LISTEN or member session) makes it suspect, and
 * one probe (a fresh connection to whichever host is the primary now) decides. While the probe
 * fails the database is down: requests fail at once with UNAVAILABLE, and requests already
 * waiting on the database fail too (postgres.js queues a query until a connection comes back,
 * which during a failover may be many seconds); probes repeat until a primary answers.
 */
export class DbHealth {
  private down = false;
  private probing = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly waiting = new Set<(err: Error) => void>();
  /** When the current outage began (ms since epoch), 0 when up. */
  downSince = 0;
  outages = 0;

  constructor(private readonly opts: HealthOptions) {}

  get available(): boolean {
    return !this.down;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Runs a request unless the database is down; fails it if the database goes down meanwhile. */
  guard<T>(f: () => Promise<T>): Promise<T> {
    if (this.down) return Promise.reject(this.opts.unavailable());
    return new Promise<T>((resolve, reject) => {
      const fail = (err: Error): void => reject(err);
      this.waiting.add(fail);
      let p: Promise<T>;
      try {
        p = f();
      } catch (err) {
        this.waiting.delete(fail);
        reject(err);
        return;
      }
      p.then(
        (v) => { this.waiting.delete(fail); resolve(v); },
        (err: unknown) => { this.waiting.delete(fail); reject(err); },
      );
    });
  }

  /** Something lost its connection: probe the primary unless a probe is running. */
  suspect(err: unknown): void {
    if (this.probing || this.stopped) return;
    this.probing = true;
    this.opts.log.debug({ err }, 'database connection lost; probing the primary');
    void this.probe();
  }

  private async probe(): Promise<void> {
    if (this.stopped) return;
    try {
      const c = await connectPrimary(this.opts.target, {
        applicationName: 'pgetcd probe',
        connectTimeoutMs: this.opts.probeTimeoutMs,
        onError: () => undefined,
      });
      await c.end().catch(() => undefined);
      this.probing = false;
      if (this.down) {
        this.down = false;
        this.opts.log.warn({ downMs: Date.now() - this.downSince }, 'PostgreSQL primary reachable again; serving');
        this.downSince = 0;
      }
    } catch (err) {
      if (!this.down) {
        this.down = true;
        this.outages++;
        this.downSince = Date.now();
        this.opts.log.error({ err }, 'PostgreSQL primary unreachable: requests fail with UNAVAILABLE until it is back');
        const waiting = [...this.waiting];
        this.waiting.clear();
        for (const fail of waiting) fail(this.opts.unavailable());
      }
      this.timer = setTimeout(() => void this.probe(), this.opts.probeMs);
    }
  }
}
