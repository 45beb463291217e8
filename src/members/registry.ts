import { randomInt } from 'node:crypto';
import type pg from 'pg';
import type { Sql } from '../db/sql.ts';
import { connectPrimary } from '../db/session.ts';
import type { PgTarget } from '../db/target.ts';
import type { Logger } from '../log.ts';
import { dbCall } from '../store/pgerrors.ts';

/** classid of the members' advisory locks ("pget"); objid is the member's lock_key. */
export const MEMBER_LOCK_CLASS = 0x7067_6574;

export interface Member {
  id: string;
  name: string;
  clientUrls: string[];
}

export interface RegistryOptions {
  target: PgTarget;
  sql: Sql;
  log: Logger;
  self: Member;
  /** Pause before re-registering after the session was lost. */
  retryMs: number;
  /** The session was lost (the database may be failing over). */
  onLost?: (err: unknown) => void;
}

/** Rows whose advisory lock some session holds: the running instances. */
const LIVE = `
  EXISTS (SELECT 1 FROM pg_locks l
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
            AND l.classid = ${MEMBER_LOCK_CLASS}::oid AND l.objid = m.lock_key::oid
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`;

/**
 * This instance's entry in the `members` table and the list of running instances.
 *
 * A dedicated session holds the member's advisory lock for as long as the instance runs; the
 * row is written after the lock is taken, so a row without a held lock is a dead instance (or
 * one re-registering, which writes its row again). PostgreSQL ends the session of a killed
 * process at once, and TCP keepalives (5 s + 3 × 2 s) end one whose host vanished; after a
 * database failover the new primary has no sessions, so every instance re-registers there.
 */
export class MemberRegistry {
  private client: pg.Client | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private lost: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Ends the pause between registration attempts early (on stop). */
  private wake: (() => void) | undefined;

  constructor(private readonly opts: RegistryOptions) {}

  /** Registers once before serving (so MemberList from any instance shows it), then keeps it up. */
  async start(): Promise<void> {
    try {
      await this.register();
    } catch (err) {
      this.opts.log.warn({ err }, 'member registration failed; retrying');
      this.drop();
    }
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // A cleared timer never resolves its pause: wake the loop too, or stop() waits forever for a
    // loop that was between attempts (a stop within retryMs of losing the database session).
    clearTimeout(this.timer);
    this.wake?.();
    this.lost?.();
    await this.loop;
    // The session is ended after the loop: one it opened while stopping (a registration in
    // flight) would otherwise stay open and keep the process alive.
    const c = this.client;
    if (c) {
      await c.query('DELETE FROM members WHERE id = $1', [this.opts.self.id]).catch(() => undefined);
      this.drop();
    }
  }

  /** The running instances, this one first (also while its own session is re-registering). */
  async list(): Promise<Member[]> {
    const rows = (await dbCall(() => this.opts.sql.unsafe(
      `SELECT id::text AS id, name, client_urls FROM members m WHERE ${LIVE} ORDER BY started_at, id`,
    ))) as unknown as Array<{ id: string; name: string; client_urls: string[] }>;
    const others = rows.filter((r) => r.id !== this.opts.self.id).map((r) => ({ id: r.id, name: r.name, clientUrls: r.client_urls }));
    return [this.opts.self, ...others];
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (this.client) {
        await new Promise<void>((resolve) => { this.lost = resolve; });
        this.lost = undefined;
        if (this.stopped) return;
      }
      await new Promise<void>((resolve) => { this.wake = resolve; this.timer = setTimeout(resolve, this.opts.retryMs); });
      this.wake = undefined;
      if (this.stopped) return;
      try {
        await this.register();
        this.opts.log.info({ member: this.opts.self.id }, 'member registered again');
      } catch (err) {
        this.opts.log.warn({ err }, 'member registration failed; retrying');
        this.drop();
      }
    }
  }

  private async register(): Promise<void> {
    const self = this.opts.self;
    // `let` before the call: the session can fail while connectPrimary is still running (a
    // backend terminated during the handshake), and the handler must not touch a `const` that is
    // not initialised yet (a ReferenceError thrown from an 'error' listener kills the process).
    let c: pg.Client | undefined;
    c = await connectPrimary(this.opts.target, {
      applicationName: `pgetcd member (${self.name})`,
      serverKeepalives: true,
      onError: (err) => {
        this.opts.log.warn({ err }, 'member session lost');
        this.opts.onLost?.(err);
        if (c !== undefined && this.client === c) this.drop();
      },
    });
    const session = c;
    session.on('end', () => { if (this.client === session) this.drop(); });
    this.client = session;
    let key = 0;
    for (let i = 0; i < 100 && key === 0; i++) {
      const k = randomInt(1, 2 ** 31);
      const r = await session.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS got', [MEMBER_LOCK_CLASS | 0, k]);
      if (r.rows[0]?.got) key = k;
    }
    if (key === 0) throw new Error('no free member lock key');
    const dup = await session.query<{ name: string }>(`SELECT name FROM members m WHERE id = $1 AND ${LIVE}`, [self.id]);
    if (dup.rows.length > 0) {
      this.opts.log.error({ member: self.id, name: self.name }, 'another running instance has this member ID (same --name and --advertise-client-urls); MemberList shows one of them');
    }
    // Rows of dead instances go; ours is (re)written.
    await session.query(`DELETE FROM members m WHERE NOT ${LIVE}`);
    await session.query(
      `INSERT INTO members (id, name, client_urls, started_at, lock_key) VALUES ($1, $2, $3, now(), $4)
       ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, client_urls = EXCLUDED.client_urls,
         started_at = EXCLUDED.started_at, lock_key = EXCLUDED.lock_key`,
      [self.id, self.name, self.clientUrls, key],
    );
  }

  /** Ends the session; the advisory lock goes with it. */
  private drop(): void {
    const c = this.client;
    this.client = undefined;
    if (c) c.end().catch(() => undefined);
    this.lost?.();
  }
}
