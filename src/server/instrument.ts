import type * as grpc from '@grpc/grpc-js';
import type { GrpcType, MethodStats } from '../metrics/index.ts';

/** Where a wrapped method counts (Metrics.grpcMethod). */
export type MethodRecorder = (type: GrpcType, service: string, method: string) => MethodStats;

type Method = grpc.MethodDefinition<object, object>;
type Callback = (err: { code?: number } | null, value?: object | null, trailer?: grpc.Metadata, flags?: number) => void;
type UnaryLike = (call: object, callback: Callback) => void;
type StreamLike = (call: grpc.ServerWritableStream<object, object> | grpc.ServerDuplexStream<object, object>) => void;

const UNKNOWN = 2;
const CANCELLED = 1;

function typeOf(m: Method): GrpcType {
  if (m.requestStream) return m.responseStream ? 'bidi_stream' : 'client_stream';
  return m.responseStream ? 'server_stream' : 'unary';
}

/** "/etcdserverpb.KV/Range" -> ["etcdserverpb.KV", "Range"], as go-grpc-prometheus splits the full method name. */
function splitPath(path: string): [string, string] {
  const i = path.lastIndexOf('/');
  return [path.slice(1, i), path.slice(i + 1)];
}

/**
 * A service with go-grpc-prometheus's accounting, as etcd's interceptors do it: started and
 * handled (with the status code) per call, handling time, and every message and its bytes
 * (counted where messages are decoded and encoded, so unary and streaming calls count alike).
 * Every method gets its record at registration, so all show zeros from the start.
 */
export function instrumentService(
  def: grpc.ServiceDefinition,
  impl: grpc.UntypedServiceImplementation,
  record: MethodRecorder,
): [grpc.ServiceDefinition, grpc.UntypedServiceImplementation] {
  const outDef: Record<string, Method> = {};
  const outImpl: grpc.UntypedServiceImplementation = {};
  for (const [name, d] of Object.entries(def as Record<string, Method>)) {
    const type = typeOf(d);
    const [service, method] = splitPath(d.path);
    const m = record(type, service, method);
    const decode = d.requestDeserialize;
    const encode = d.responseSerialize;
    outDef[name] = {
      ...d,
      requestDeserialize: (buf: Buffer) => {
        m.received++;
        m.receivedBytes += buf.length;
        return decode(buf);
      },
      responseSerialize: (value: object) => {
        const buf = encode(value);
        m.sent++;
        m.sentBytes += buf.length;
        return buf;
      },
    };
    const h = impl[name] ?? (d.originalName ? impl[d.originalName] : undefined);
    if (!h) continue;
    outImpl[name] = (type === 'unary' || type === 'client_stream' ? wrapWithCallback(h as unknown as UnaryLike, m) : wrapStream(h as unknown as StreamLike, m)) as unknown as grpc.UntypedHandleCall;
  }
  return [outDef as grpc.ServiceDefinition, outImpl];
}

function wrapWithCallback(h: UnaryLike, m: MethodStats): UnaryLike {
  return (call, callback) => {
    m.started++;
    const t0 = performance.now();
    h(call, (err, value, trailer, flags) => {
      m.done(err ? (err.code ?? UNKNOWN) : 0, (performance.now() - t0) / 1000);
      callback(err, value, trailer, flags);
    });
  };
}

function wrapStream(h: StreamLike, m: MethodStats): StreamLike {
  return (call) => {
    m.started++;
    const t0 = performance.now();
    let done = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      m.done(code, (performance.now() - t0) / 1000);
    };
    // grpc-js sends the stream's status when it finishes: the status it keeps (OK unless the
    // handler emitted an error) is the code etcd's interceptor would report.
    call.once('finish', () => finish((call as unknown as { pendingStatus?: { code?: number } }).pendingStatus?.code ?? 0));
    call.once('cancelled', () => finish(CANCELLED));
    h(call);
  };
}
