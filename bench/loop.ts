import { performance } from 'node:perf_hooks';
import { errorText } from './grpc.ts';
import { Recorder } from './stats.ts';
import type { CommonOptions, RunOutput } from './workload.ts';

/** Gives up after this many failed requests (a server that rejects everything). */
const MAX_ERRORS = 1000;

export interface LoopLimits {
  clients: number;
  total: number | undefined;
  seconds: number | undefined;
}

/** Limits for a measured run or a warm-up, from the common options. */
export function limitsFor(common: CommonOptions, warmup: boolean, defaultTotal: number): LoopLimits {
  if (warmup) return { clients: common.clients, total: undefined, seconds: common.warmup };
  if (common.seconds !== undefined) return { clients: common.clients, total: undefined, seconds: common.seconds };
  return { clients: common.clients, total: common.total ?? defaultTotal, seconds: undefined };
}

/**
 * Closed loop: `clients` concurrent clients, each sending one request and waiting for its
 * response before the next, until `total` requests were issued or `seconds` passed.
 * `makeClient(i)` returns client i's request function (it throws on a failed request).
 */
export async function closedLoop(
  limits: LoopLimits,
  makeClient: (i: number) => () => Promise<void>,
  unit: string,
): Promise<RunOutput> {
  const latency = new Recorder();
  const errorSamples: string[] = [];
  let issued = 0;
  let done = 0;
  let errors = 0;
  let stop = false;
  const total = limits.total ?? Infinity;
  const timer = limits.seconds !== undefined ? setTimeout(() => { stop = true; }, limits.seconds * 1000) : undefined;
  const start = performance.now();
  const client = async (i: number): Promise<void> => {
    const op = makeClient(i);
    while (!stop && issued < total) {
      issued++;
      const t0 = performance.now();
      try {
        await op();
        latency.add((performance.now() - t0) * 1000);
        done++;
      } catch (err) {
        errors++;
        const text = errorText(err);
        if (errorSamples.length < 5 && !errorSamples.includes(text)) errorSamples.push(text);
        if (errors >= MAX_ERRORS) stop = true;
      }
    }
  };
  await Promise.all(Array.from({ length: limits.clients }, (_, i) => client(i)));
  const seconds = (performance.now() - start) / 1000;
  if (timer) clearTimeout(timer);
  return { requests: done, errors, errorSamples, seconds, latency, unit, extra: {} };
}

/** Runs `fn` over `items` with at most `concurrency` at a time (for loading data). */
export async function parallel<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** A fast PRNG (xorshift32) so key choice costs nothing and runs are repeatable. */
export function rng(seed: number): () => number {
  let x = (seed | 0) || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}
