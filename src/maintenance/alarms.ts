import type { Sql } from '../db/sql.ts';
import type { Logger } from '../log.ts';
import { dbCall } from '../store/pgerrors.ts';

/** etcdserverpb.AlarmType. */
export const ALARM_NONE = 0;
export const ALARM_NOSPACE = 1;
export const ALARM_CORRUPT = 2;

/** Channel the alarms trigger notifies on every change of the table. */
export const ALARMS_CHANNEL = 'pgetcd_alarms';

/** One active alarm: which member raised it and its etcdserverpb.AlarmType. */
export interface AlarmMember {
  /** uint64 member ID, decimal. */
  memberId: string;
  alarm: number;
}

/** etcd's AlarmType names (what /health and the metrics say). */
export function alarmName(alarm: number): string {
  return alarm === ALARM_NOSPACE ? 'NOSPACE' : alarm === ALARM_CORRUPT ? 'CORRUPT' : alarm === ALARM_NONE ? 'NONE' : String(alarm);
}

/**
 * The cluster's alarms (table alarms): every instance keeps a copy, reloaded on each change
 * (NOTIFY pgetcd_alarms) and whenever its LISTEN connection comes back, so a write refused on one
 * instance for NOSPACE is refused on all of them within a notification's delay.
 */
export class AlarmStore {
  private active: AlarmMember[] = [];
  private listening: { unlisten(): Promise<void> } | undefined;
  private loading: Promise<void> | undefined;

  constructor(private readonly sql: Sql, private readonly log: Logger) {}

  async start(): Promise<void> {
    await this.reload();
    this.listening = await this.sql.listen(ALARMS_CHANNEL, () => { void this.reload(); }, () => { void this.reload(); });
  }

  async stop(): Promise<void> {
    await this.listening?.unlisten().catch(() => undefined);
    this.listening = undefined;
    await this.loading;
  }

  /** Active alarms as of the last reload, of one type or (ALARM_NONE) all, by member then type. */
  list(alarm = ALARM_NONE): AlarmMember[] {
    return alarm === ALARM_NONE ? [...this.active] : this.active.filter((a) => a.alarm === alarm);
  }

  has(alarm: number): boolean {
    return this.active.some((a) => a.alarm === alarm);
  }

  /** Raises `alarm` for `memberId`; answers the alarm as stored (it may have been active already). */
  async activate(memberId: string, alarm: number): Promise<AlarmMember> {
    await dbCall(() => this.sql`INSERT INTO alarms (member_id, alarm) VALUES (${memberId}::numeric, ${alarm}) ON CONFLICT DO NOTHING`);
    await this.reload();
    return { memberId, alarm };
  }

  /** Clears `alarm` of `memberId`; answers what was cleared, undefined when it was not active. */
  async deactivate(memberId: string, alarm: number): Promise<AlarmMember | undefined> {
    const rows = (await dbCall(() => this.sql`
      DELETE FROM alarms WHERE member_id = ${memberId}::numeric AND alarm = ${alarm} RETURNING member_id::text AS member_id`)) as unknown as Array<{ member_id: string }>;
    await this.reload();
    return rows.length > 0 ? { memberId, alarm } : undefined;
  }

  /** Reads the table again (queued behind a reload in progress, so the last one wins). */
  reload(): Promise<void> {
    const run = async (): Promise<void> => {
      try {
        const rows = (await this.sql`SELECT member_id::text AS member_id, alarm FROM alarms ORDER BY member_id, alarm`) as unknown as Array<{ member_id: string; alarm: number }>;
        const next = rows.map((r) => ({ memberId: r.member_id, alarm: Number(r.alarm) }));
        const before = this.active.map(key).join(',');
        this.active = next;
        if (next.map(key).join(',') !== before) this.log.warn({ alarms: next.map((a) => ({ memberId: a.memberId, alarm: alarmName(a.alarm) })) }, 'active alarms changed');
      } catch (err) {
        this.log.warn({ err }, 'reading the alarms failed');
      }
    };
    const next = (this.loading ?? Promise.resolve()).then(run);
    this.loading = next;
    return next;
  }
}

function key(a: AlarmMember): string {
  return `${a.memberId}/${a.alarm}`;
}
