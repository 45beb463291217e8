import type pg from 'pg';
import { connectPrimary } from '../db/session.ts';
import type { PgTarget } from '../db/target.ts';
import type { Logger } from '../log.ts';

export interface ListenerOptions {
  target: PgTarget;
  channel: string;
  applicationName: string;
  log: Logger;
  /** Every notification's payload. */
  onNotify: (payload: string) => void;
  /** The connection is up and LISTENing again after it was lost (notifications may be missed). */
  onReconnected: () => void;
  /** The connection was lost (the database may be failing over). */
  onLost?: (err: unknown) => void;
  /** A `SELECT 1` on the connection this often proves it alive (ms). */
  livenessCheckMs: number;
}

/**
 * One LISTEN session on the primary that comes back on its own: on any error it reconnects
 * (to whichever host of a multi-host endpoint is the primary now: see connectPrimary), with
 * backoff from 100 ms to 2 s, forever. node-postgres alone, since the session must follow a
 * failover (a LISTEN library with fixed connection settings cannot).
 */
export class Listener {
  private client: pg.Client | undefined;
  private stopped = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private liveness: NodeJS.Timeout | undefined;
  reconnects = 0;

  constructor(private readonly opts: ListenerOptions) {}

  /** Connects and LISTENs; throws if the first attempt fails. */
  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.liveness);
    const c = this.client;
    this.client = undefined;
    if (c) await c.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    let session: pg.Client | undefined;
    const c = await connectPrimary(this.opts.target, {
      applicationName: this.opts.applicationName,
      onError: (err) => { if (session) this.lost(session, err); },
    });
    session = c;
    if (this.stopped) {
      await c.end().catch(() => undefined);
      return;
    }
    c.on('end', () => this.lost(c, new Error('LISTEN connection ended')));
    c.on('notification', (n) => {
      if (n.channel === this.opts.channel) this.opts.onNotify(n.payload ?? '');
    });
    try {
      await c.query(`LISTEN ${this.opts.channel}`);
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    if (this.stopped) {
      // stop() ran while LISTEN was in flight and found no client to end: end this one, or its
      // socket keeps the process alive.
      await c.end().catch(() => undefined);
      return;
    }
    this.client = c;
    clearInterval(this.liveness);
    this.liveness = setInterval(() => {
      c.query({ text: 'SELECT 1', query_timeout: Math.max(1000, this.opts.livenessCheckMs) } as pg.QueryConfig)
        .catch((err: unknown) => this.lost(c, err));
    }, this.opts.livenessCheckMs);
    this.liveness.unref();
  }

  private lost(c: pg.Client, err: unknown): void {
    if (this.stopped || this.client !== c) return;
    this.client = undefined;
    clearInterval(this.liveness);
    c.end().catch(() => undefined);
    this.opts.log.warn({ err }, 'LISTEN connection lost; reconnecting');
    this.opts.onLost?.(err);
    this.reconnects++;
    this.attempt = 0;
    this.retry();
  }

  private retry(): void {
    if (this.stopped) return;
    const delay = Math.min(100 * 2 ** this.attempt, 2000);
    this.attempt++;
    this.timer = setTimeout(() => {
      this.connect().then(
        () => {
          if (this.stopped) return;
          this.opts.log.info({ attempts: this.attempt }, 'LISTEN connection up again');
          this.opts.onReconnected();
        },
        (err: unknown) => {
          this.opts.log.debug({ err, attempt: this.attempt }, 'LISTEN reconnect failed');
          this.retry();
        },
      );
    }, delay);
  }
}
