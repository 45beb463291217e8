import type { Logger } from '../log.ts';

/** Longest key prefix a slow-request line shows. */
const MAX_PREFIX_BYTES = 64;

function firstKey(req: object): Buffer | undefined {
  const r = req as { key?: unknown; compare?: Array<{ key?: unknown }>; success?: Array<Record<string, unknown>> };
  if (Buffer.isBuffer(r.key)) return r.key;
  const c = r.compare?.[0]?.key;
  if (Buffer.isBuffer(c)) return c;
  const op = r.success?.[0];
  const inner = op && typeof op.request === 'string' ? (op[op.request] as { key?: unknown } | undefined) : undefined;
  return inner && Buffer.isBuffer(inner.key) ? inner.key : undefined;
}

/**
 * The key up to its last '/' (e.g. /registry/pods/default/), at most 64 bytes: where a slow
 * request went, without the object's own name and never its value.
 */
export function keyPrefix(req: object): string | undefined {
  const key = firstKey(req);
  if (!key || key.length === 0) return undefined;
  const slash = key.lastIndexOf(0x2f);
  const cut = key.subarray(0, Math.min(slash >= 0 ? slash + 1 : key.length, MAX_PREFIX_BYTES));
  return cut.toString('utf8').replace(/[^\x20-\x7e]/g, '?');
}

/** Logs a request slower than etcd's --warning-apply-duration at warn, as etcd does. */
export function warnIfSlow(log: Logger, thresholdMs: number, method: string, req: object, startedAt: number): void {
  const took = performance.now() - startedAt;
  if (thresholdMs <= 0 || took < thresholdMs) return;
  log.warn({ method, keyPrefix: keyPrefix(req), tookMs: Math.round(took * 10) / 10, thresholdMs }, 'request took too long');
}
