import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * go-grpc-prometheus's server families, as etcd exports them (grpc_server_*; labels grpc_type,
 * grpc_service, grpc_method, and grpc_code on handled_total). The hot path only bumps plain
 * numbers in a per-method record; the families read the records when scraped, so a request
 * costs no label hashing.
 */

export type GrpcType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

/** grpc codes by number, as Go's codes.Code.String() spells them. */
const CODE_NAMES = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists',
  'PermissionDenied', 'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented',
  'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated',
];

/** prometheus.DefBuckets, go-grpc-prometheus's default for grpc_server_handling_seconds. */
export const HANDLING_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Counts for one gRPC method. */
export class MethodStats {
  started = 0;
  received = 0;
  sent = 0;
  receivedBytes = 0;
  sentBytes = 0;
  readonly handled = new Array<number>(CODE_NAMES.length).fill(0);
  /** Cumulative at scrape time; here per bucket (last slot: above the largest bound). */
  readonly buckets = new Array<number>(HANDLING_BUCKETS.length + 1).fill(0);
  sum = 0;
  count = 0;

  constructor(readonly type: GrpcType, readonly service: string, readonly method: string, private readonly timed: boolean) {}

  /** A call finished with `code` after `seconds`. */
  done(code: number, seconds: number): void {
    this.handled[code >= 0 && code < CODE_NAMES.length ? code : 2]!++;
    if (!this.timed) return;
    let i = 0;
    while (i < HANDLING_BUCKETS.length && seconds > HANDLING_BUCKETS[i]!) i++;
    this.buckets[i]!++;
    this.sum += seconds;
    this.count++;
  }

  labels(): { grpc_type: GrpcType; grpc_service: string; grpc_method: string } {
    return { grpc_type: this.type, grpc_service: this.service, grpc_method: this.method };
  }
}

const HANDLING_NAME = 'grpc_server_handling_seconds';
const HANDLING_HELP = 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.';

/** grpc_server_handling_seconds filled from MethodStats when scraped. */
class HandlingHistogram extends Histogram<string> {
  constructor(registers: Registry[], private readonly methods: () => Iterable<MethodStats>) {
    super({
      name: HANDLING_NAME,
      help: HANDLING_HELP,
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
      buckets: HANDLING_BUCKETS,
      registers,
    });
  }

  /**
   * prom-client formats a histogram from getForPromString (its get() splays that): the buckets
   * come from the method records instead of observe() calls.
   */
  async getForPromString(): Promise<{ name: string; help: string; type: string; aggregator: string; values: PromValue[] }> {
    const values: PromValue[] = [];
    const shared = {};
    for (const m of this.methods()) {
      const labels = m.labels();
      let cum = 0;
      HANDLING_BUCKETS.forEach((le, i) => {
        cum += m.buckets[i]!;
        values.push({ metricName: 'grpc_server_handling_seconds_bucket', labels: { ...labels, le }, sharedLabels: shared, value: cum });
      });
      cum += m.buckets[HANDLING_BUCKETS.length]!;
      values.push({ metricName: 'grpc_server_handling_seconds_bucket', labels: { ...labels, le: '+Inf' }, sharedLabels: shared, value: cum });
      values.push({ metricName: 'grpc_server_handling_seconds_sum', labels: { ...labels }, sharedLabels: shared, value: m.sum });
      values.push({ metricName: 'grpc_server_handling_seconds_count', labels: { ...labels }, sharedLabels: shared, value: m.count });
    }
    return { name: HANDLING_NAME, help: HANDLING_HELP, type: 'histogram', aggregator: 'sum', values };
  }
}

interface PromValue {
  metricName: string;
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
}

export class GrpcMetrics {
  private readonly methods = new Map<string, MethodStats>();

  constructor(registers: Registry[], private readonly timed: boolean) {
    const all = (): Iterable<MethodStats> => this.methods.values();
    const perMethod = (name: string, help: string, pick: (m: MethodStats) => number): void => {
      new Counter({
        name, help, labelNames: ['grpc_type', 'grpc_service', 'grpc_method'], registers,
        collect() {
          this.reset();
          for (const m of all()) this.inc(m.labels(), pick(m));
        },
      });
    };
    perMethod('grpc_server_started_total', 'Total number of RPCs started on the server.', (m) => m.started);
    perMethod('grpc_server_msg_received_total', 'Total number of RPC stream messages received on the server.', (m) => m.received);
    perMethod('grpc_server_msg_sent_total', 'Total number of gRPC stream messages sent by the server.', (m) => m.sent);
    new Counter({
      name: 'grpc_server_handled_total',
      help: 'Total number of RPCs completed on the server, regardless of success or failure.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'],
      registers,
      collect() {
        this.reset();
        for (const m of all()) {
          const labels = m.labels();
          // Every code of every method, zero or not, as go-grpc-prometheus's InitializeMetrics does.
          m.handled.forEach((n, code) => this.inc({ ...labels, grpc_code: CODE_NAMES[code]! }, n));
        }
      },
    });
    if (timed) new HandlingHistogram(registers, all);
    const bytes = (name: string, help: string, pick: () => number): void => {
      new Counter({ name, help, registers, collect() { this.reset(); this.inc(pick()); } });
    };
    const total = (pick: (m: MethodStats) => number) => (): number => {
      let n = 0;
      for (const m of all()) n += pick(m);
      return n;
    };
    // Message bytes as etcd counts them (protobuf payloads, without gRPC and HTTP/2 framing).
    bytes('etcd_network_client_grpc_received_bytes_total', 'The total number of bytes received from grpc clients.', total((m) => m.receivedBytes));
    bytes('etcd_network_client_grpc_sent_bytes_total', 'The total number of bytes sent to grpc clients.', total((m) => m.sentBytes));
  }

  /** The record of one method (created at registration, so every method shows from the start). */
  method(type: GrpcType, service: string, method: string): MethodStats {
    const key = `${service}/${method}`;
    let m = this.methods.get(key);
    if (!m) {
      m = new MethodStats(type, service, method, this.timed);
      this.methods.set(key, m);
    }
    return m;
  }
}
