/** The watch module's fixed sizes; each is documented where it is used. */

/** Most revisions one feed read covers (a revision is never split). */
export const FEED_WINDOW_REVISIONS = 1000;
/**
 * Ring buffer of recent events: most events and most bytes (counted as encoded size with
 * prev_kv; memory is up to about twice that, with the encoded copies the fan-out caches).
 */
export const RING_MAX_EVENTS = 100_000;
export const RING_MAX_BYTES = 32 * 1024 * 1024;
/** Catch-up reads from kv_log running at once, and rows per read. */
export const CATCHUP_CONCURRENCY = 4;
export const CATCHUP_ROWS = 1000;
/** Bytes of events a catching-up watcher gets at a time; it then waits until its stream has room. */
export const CATCHUP_CHUNK_BYTES = 1024 * 1024;
/** Liveness check of the LISTEN connection (a `SELECT 1`), in ms. */
export const LISTEN_LIVENESS_CHECK_MS = 30_000;
/** etcd fragments at --max-request-bytes plus its gRPC overhead allowance. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;
