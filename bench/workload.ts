/**
 * The contract between the runner (run.ts) and a workload. The runner starts the server (pgetcd
 * or etcd), opens the connection pool, and measures server CPU, memory and database counters
 * around `run({ warmup: false })`; the workload only generates load and records latencies.
 *
 * A workload module outside this folder's list (e.g. bench/watch.ts) plugs in by exporting
 * `createWorkload(args: string[], common: CommonOptions): Workload`.
 */
import type { Driver, Pool } from './grpc.ts';
import type { Recorder } from './stats.ts';

/** pgetcd-metrics-off: pgetcd with --metrics off (bench --compare-metrics), to price the metrics. */
export type TargetKind = 'pgetcd' | 'pgetcd-metrics-off' | 'etcd';

export interface CommonOptions {
  clients: number;
  conns: number;
  /** Requests to measure (a workload may count whole lists, keep-alives, ... as one request). */
  total: number | undefined;
  /** Measure for this long instead of `total`. */
  seconds: number | undefined;
  /** Load before measuring, not counted (seconds). */
  warmup: number;
  /** How the generator speaks gRPC (node:http2 directly, or grpc-js). */
  driver: Driver;
  /** Deadline of each request: a lost reply becomes an error instead of a hang. */
  timeoutMs: number;
  /** Smoke mode: everything tiny. */
  smoke: boolean;
  /** Send `:authority: http://host:port` (as etcdctl's per-endpoint calls and kube-apiserver's Status do). */
  urlAuthority?: boolean;
}

export interface WorkloadContext {
  target: TargetKind;
  /** host:port of each server instance. */
  endpoints: string[];
  /** `conns` connections over the endpoints. */
  pool: Pool;
  common: CommonOptions;
  /** Progress lines (stderr). */
  note(msg: string): void;
}

export interface RunOutput {
  /** Completed requests (of this workload's unit, see `unit`). */
  requests: number;
  errors: number;
  /** First few distinct error texts. */
  errorSamples: string[];
  seconds: number;
  /** Latency of one request, if measured. */
  latency: Recorder | undefined;
  /** What one request is ("put", "list of 10000 keys", "keep-alive"...). */
  unit: string;
  /** A whole program run, not a count of requests: no rates or per-request figures. */
  noRates?: boolean;
  /** Workload-specific figures, printed as extra rows (e.g. conflicts, pages/s). */
  extra: Record<string, number | string>;
}

export interface Workload {
  name: string;
  /** One line with the effective parameters. */
  params: string;
  /** Loads initial data (not measured). */
  setup?(ctx: WorkloadContext): Promise<void>;
  run(ctx: WorkloadContext, phase: { warmup: boolean }): Promise<RunOutput>;
  teardown?(ctx: WorkloadContext): Promise<void>;
  /** Connections the workload needs (defaults to common.conns). */
  conns?: number;
}
