/**
 * `--etcd-version`: the etcd release pgetcd reports (Status, /version) and whose behaviour it
 * follows where etcd's behaviour changed between releases. Each switch below names the release
 * lines that changed it (etcd backports fixes, so a change lands in several lines at once);
 * docs/design.md lists them with the reasons.
 */

export interface EtcdBehaviour {
  readonly version: string;
  /**
   * Status carries storageVersion, dbSizeQuota and downgradeInfo; HashKV carries hash_revision;
   * /version carries "storage" (3.6.0).
   */
  readonly v36Fields: boolean;
  /**
   * An unknown sort order or target is refused with "etcdserver: invalid sort option" (3.6.0).
   * Before, etcd ignored an unknown order (the answer comes in key order) and crashed on an
   * unknown target; pgetcd keeps refusing unknown targets.
   */
  readonly rejectUnknownSortOrder: boolean;
  /**
   * Progress notifications (the progress_notify ticks and RequestProgress) skip a watcher whose
   * start revision is ahead of the store (3.4.38, 3.5.22, 3.6.2; etcd PR 20241 and backports).
   * Before, such a watcher got a notification with the current revision at every tick.
   */
  readonly noProgressBeforeStart: boolean;
  /**
   * A watch with a negative start revision is created and canceled at once with the compacted
   * reason (3.4.38, 3.5.24, 3.6.6). Before, it watched from the current revision on a store
   * that was never compacted, and was canceled as compacted on one that was.
   */
  readonly rejectNegativeWatchStart: boolean;
  /**
   * RequestProgress on a stream with an unsynced watcher is dropped (3.4.25, 3.5.8: the
   * notification must not overtake events still owed). Before, etcd answered at once with the
   * current revision even so; pgetcd does not reproduce that ordering bug and answers once the
   * stream's watchers are synced.
   */
  readonly dropProgressWhenUnsynced: boolean;
  /**
   * Alarm responses carry a header (3.5.0). etcd 3.4 returns the applier's response as is, with
   * no header: `etcdctl alarm list -w json` prints `{}`.
   */
  readonly alarmHeader: boolean;
}

/** Newest release line whose behaviour pgetcd implements (3.7 adds KV.RangeStream, which it lacks). */
const NEWEST_MINOR = 6;

interface Semver { major: number; minor: number; patch: number }

function parse(v: string): Semver {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?$/.exec(v.trim());
  if (!m) throw new Error(`--etcd-version "${v}" is not a version like 3.6.11`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}

/**
 * True when `v` has a change that landed in the given patch of each release line: lines not
 * listed and older than the oldest listed do not have it, newer ones do.
 */
function since(v: Semver, fixed: Record<number, number>): boolean {
  const lines = Object.keys(fixed).map(Number).sort((a, b) => a - b);
  const p = fixed[v.minor];
  if (p !== undefined) return v.patch >= p;
  return v.minor > lines[lines.length - 1]!;
}

export function etcdBehaviour(version: string): EtcdBehaviour {
  const v = parse(version);
  if (v.major !== 3 || v.minor < 4) throw new Error(`--etcd-version ${version}: pgetcd speaks etcd's v3 API as 3.4, 3.5 or 3.6 do; use one of those`);
  if (v.minor > NEWEST_MINOR) {
    throw new Error(`--etcd-version ${version}: pgetcd implements etcd up to 3.6 (clients would expect 3.7's KV.RangeStream)`);
  }
  return {
    version,
    v36Fields: v.minor >= 6,
    rejectUnknownSortOrder: v.minor >= 6,
    noProgressBeforeStart: since(v, { 4: 38, 5: 22, 6: 2 }),
    rejectNegativeWatchStart: since(v, { 4: 38, 5: 24, 6: 6 }),
    dropProgressWhenUnsynced: since(v, { 4: 25, 5: 8 }),
    alarmHeader: v.minor >= 5,
  };
}
