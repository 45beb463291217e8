/**
 * The resource type ("kind") of a key, which picks its kv_log/kv_current partition.
 *   /registry/pods/ns/name                    -> 'pods'
 *   /registry/services/endpoints/ns/name      -> 'endpoints' (Kubernetes keeps endpoints there)
 *   /registry/<group.with.dots>/<plural>/...  -> '<group>/<plural>'
 *   anything else                             -> '' (the default partition)
 * Every kind other than '' covers exactly the keys under one prefix (`prefixOf`), which lets a
 * range that stays inside that prefix name its kind so Postgres prunes to one partition.
 */
const REGISTRY = Buffer.from('/registry/');
const SERVICES = 'services';
const SLASH = 0x2f;
const MAX_SEGMENT = 100;

export interface KindInfo {
  kind: string;
  /** The key prefix shared by every key of this kind; empty for kind ''. */
  prefix: Buffer;
}

const NONE: KindInfo = { kind: '', prefix: Buffer.alloc(0) };

/** End of the segment starting at `from` (index of the next '/'), or -1 if it is not a clean segment. */
function segmentEnd(key: Buffer, from: number): number {
  const limit = Math.min(key.length, from + MAX_SEGMENT + 1);
  for (let i = from; i < limit; i++) {
    const c = key[i]!;
    if (c === SLASH) return i > from ? i : -1;
    // Printable ASCII only: the kind is stored as text and names partitions.
    if (c < 0x21 || c > 0x7e) return -1;
  }
  return -1;
}

function hasDot(key: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (key[i] === 0x2e) return true;
  return false;
}

export function kindInfo(key: Buffer): KindInfo {
  if (key.length <= REGISTRY.length || REGISTRY.compare(key, 0, REGISTRY.length) !== 0) return NONE;
  const s1 = REGISTRY.length;
  const e1 = segmentEnd(key, s1);
  if (e1 < 0) return NONE;
  const seg1 = key.toString('latin1', s1, e1);
  if (seg1 === SERVICES) {
    const e2 = segmentEnd(key, e1 + 1);
    if (e2 < 0) return NONE;
    const seg2 = key.toString('latin1', e1 + 1, e2);
    return { kind: seg2 === 'endpoints' ? 'endpoints' : SERVICES, prefix: key.subarray(0, e2 + 1) };
  }
  if (!hasDot(key, s1, e1)) return { kind: seg1, prefix: key.subarray(0, e1 + 1) };
  const e2 = segmentEnd(key, e1 + 1);
  if (e2 < 0) return NONE;
  return { kind: key.toString('latin1', s1, e2), prefix: key.subarray(0, e2 + 1) };
}

export function kindOf(key: Buffer): string {
  return kindInfo(key).kind;
}

/** The smallest key greater than every key with this prefix (etcd's "prefix end"); empty = no end. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.alloc(0);
}

/**
 * The single kind every key in [key, end) belongs to, or undefined when the range may span
 * kinds. `end` empty means the single key; end = "\0" means "to the end of the key space".
 */
export function kindOfRange(key: Buffer, end: Buffer): string | undefined {
  if (end.length === 0) return kindOf(key);
  const info = kindInfo(key);
  if (info.kind === '') return undefined;
  if (end.length === 1 && end[0] === 0) return undefined;
  const limit = prefixEnd(info.prefix);
  return Buffer.compare(end, limit) <= 0 ? info.kind : undefined;
}
