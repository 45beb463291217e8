/**
 * glibc's allocator, tuned for a server that builds multi-megabyte responses. A list of 10,000
 * keys is a 3 MB RangeResponse, and grpc-js copies it once more to frame it: two fresh buffers of
 * that size per list. With glibc's defaults each one is mmap'ed (or grown into trimmed heap) and
 * faulted in page by page, and the page faults were 60 % of a list's CPU time (bench: 10,000-key
 * list, 4 clients, server CPU 12.0 ms per list without this setting, 5.0 ms with it, on the 2-core
 * bench machine). Raising the mmap threshold to 16 MiB and the trim threshold to 32 MiB makes such
 * buffers come from heap memory that stays mapped; peak RSS under `etcdctl check perf --load=m`
 * moved within its run-to-run noise (734 -> 772 MiB in one run each).
 *
 * GLIBC_TUNABLES is read when the process starts, so the launchers set it: bin/pgetcd.js's
 * `#!/usr/bin/env -S` line, `npm start` and the image's ENV (test/deploy.test.ts keeps them equal
 * to this constant). Without it pgetcd works the same, lists cost more CPU, and it says so at start.
 */
export const MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=33554432';

/** Whether this process runs with an allocator setting of its own (ours or the operator's). */
export function allocatorTuned(env: NodeJS.ProcessEnv = process.env): boolean {
  return process.platform !== 'linux' || (env.GLIBC_TUNABLES ?? '') !== '';
}
