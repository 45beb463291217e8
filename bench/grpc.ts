import fs from 'node:fs';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { loadEtcdProto, type ServiceName } from '../src/server/proto.ts';

const identity = (b: Buffer): Buffer => b;

/** Method paths taken from our .proto, e.g. path('KV', 'Put') = '/etcdserverpb.KV/Put'. */
export function methodPath(service: ServiceName, method: string): string {
  const def = loadEtcdProto().services[service][method];
  if (!def) throw new Error(`no method ${service}.${method} in the proto`);
  return def.path;
}

export const PATHS = {
  range: methodPath('KV', 'Range'),
  put: methodPath('KV', 'Put'),
  txn: methodPath('KV', 'Txn'),
  leaseGrant: methodPath('Lease', 'LeaseGrant'),
  leaseRevoke: methodPath('Lease', 'LeaseRevoke'),
  leaseKeepAlive: methodPath('Lease', 'LeaseKeepAlive'),
};

export type Driver = 'http2' | 'grpc-js';

/** One connection: unary calls and lock-step bidi streams with pre-encoded messages. */
export interface Conn {
  /** Resolves with the raw response bytes; rejects with a GrpcError (or grpc-js ServiceError). */
  unary(path: string, req: Buffer, timeoutMs?: number): Promise<Buffer>;
  stream(path: string): LockStep;
  ready(deadline: number): Promise<void>;
  close(): void;
}

/** A bidi stream used request -> response in lock step (LeaseKeepAlive). */
export interface LockStep {
  send(req: Buffer): Promise<Buffer>;
  close(): void;
}

/**
 * N connections spread round-robin over the endpoints; client i uses connection i mod N.
 * Driver `http2` (default) speaks gRPC with node:http2 directly: about 2.5 times less CPU per
 * request than grpc-js, which matters because the generator shares the cores with the server.
 * Driver `grpc-js` uses one grpc-js channel per connection (private subchannel pool).
 */
export class Pool {
  readonly conns: Conn[] = [];

  /** `timeoutMs`: deadline of every unary call that does not name one (a lost reply fails, never hangs). */
  constructor(endpoints: string[], conns: number, driver: Driver = 'http2', timeoutMs = 60_000, urlAuthority = false) {
    for (let i = 0; i < conns; i++) {
      const ep = endpoints[i % endpoints.length]!;
      this.conns.push(driver === 'http2' ? new H2Conn(ep, timeoutMs, urlAuthority) : new GrpcJsConn(ep, i, timeoutMs));
    }
  }

  get size(): number {
    return this.conns.length;
  }

  conn(i: number): Conn {
    return this.conns[i % this.conns.length]!;
  }

  async ready(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await Promise.all(this.conns.map((c) => c.ready(deadline)));
  }

  close(): void {
    for (const c of this.conns) c.close();
  }
}

/** A failed call: gRPC status code and message, like grpc-js's ServiceError. */
export class GrpcError extends Error {
  constructor(readonly code: number, readonly details: string) {
    super(`${grpc.status[code] ?? code}: ${details}`);
  }
}

function frame(req: Buffer): Buffer {
  const f = Buffer.allocUnsafe(5 + req.length);
  f[0] = 0;
  f.writeUInt32BE(req.length, 1);
  req.copy(f, 5);
  return f;
}

function statusOf(h: http2.IncomingHttpHeaders): [number, string] | undefined {
  const s = h['grpc-status'];
  if (s === undefined) return undefined;
  const m = h['grpc-message'];
  let msg = typeof m === 'string' ? m : '';
  try { msg = decodeURIComponent(msg); } catch { /* as sent */ }
  return [Number(s), msg];
}

/** Splits a gRPC byte stream into messages (5-byte prefix: compressed flag, length). */
class MessageReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer, each: (msg: Buffer) => void): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < 5 + len) return;
      if (this.buf[0] !== 0) throw new Error('compressed gRPC message (not requested)');
      each(this.buf.subarray(5, 5 + len));
      this.buf = this.buf.subarray(5 + len);
    }
  }
}

const H2_WINDOW = 8 * 1024 * 1024;

class H2Conn implements Conn {
  private readonly session: http2.ClientHttp2Session;
  private readonly connected: Promise<void>;
  private readonly authority: string;

  /** Set: every request's `:authority` is `http://host:port` instead of node's `host:port`. */
  private readonly urlAuthority: string | undefined;

  /** `endpoint`: host:port, or https://host:port for TLS (the server's CA in PGETCD_BENCH_CA_FILE). */
  constructor(endpoint: string, private readonly timeoutMs: number, urlAuthority = false) {
    const secure = endpoint.startsWith('https://');
    endpoint = endpoint.replace(/^https?:\/\//, '');
    this.authority = endpoint;
    this.urlAuthority = urlAuthority ? `${secure ? 'https' : 'http'}://${endpoint}` : undefined;
    const ca = process.env.PGETCD_BENCH_CA_FILE;
    this.session = http2.connect(`${secure ? 'https' : 'http'}://${endpoint}`, {
      settings: { initialWindowSize: H2_WINDOW, enablePush: false },
      maxSessionMemory: 512,
      ...(secure && ca ? { ca: fs.readFileSync(ca) } : {}),
    });
    this.connected = new Promise((resolve, reject) => {
      this.session.once('connect', () => {
        this.session.setLocalWindowSize(4 * H2_WINDOW);
        resolve();
      });
      this.session.once('error', reject);
    });
    this.connected.catch(() => undefined);
    this.session.on('error', () => undefined);
  }

  async ready(deadline: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`cannot connect to ${this.authority}`)), Math.max(0, deadline - Date.now()));
    });
    try {
      await Promise.race([this.connected, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** No grpc-timeout header: the deadline is enforced here, so the server keeps no timer per call. */
  private request(path: string): http2.ClientHttp2Stream {
    const h: http2.OutgoingHttpHeaders = { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', 'te': 'trailers' };
    if (this.urlAuthority) h[':authority'] = this.urlAuthority;
    return this.session.request(h);
  }

  unary(path: string, req: Buffer, timeoutMs = this.timeoutMs): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let st: http2.ClientHttp2Stream;
      try {
        st = this.request(path);
      } catch (err) {
        reject(err as Error);
        return;
      }
      let expired = false;
      const timer = setTimeout(() => {
        expired = true;
        st.close(http2.constants.NGHTTP2_CANCEL);
      }, timeoutMs);
      let data: Buffer | undefined;
      let chunks: Buffer[] | undefined;
      let status: [number, string] | undefined;
      st.on('response', (h) => { status = statusOf(h) ?? status; });
      st.on('trailers', (h) => { status = statusOf(h) ?? status; });
      st.on('data', (c: Buffer) => {
        if (data === undefined) data = c;
        else (chunks ??= [data]).push(c);
      });
      st.on('error', () => undefined);
      st.on('close', () => {
        clearTimeout(timer);
        if (expired && !status) {
          reject(new GrpcError(grpc.status.DEADLINE_EXCEEDED, `no response in ${timeoutMs} ms`));
        } else if (!status) {
          reject(new GrpcError(grpc.status.UNAVAILABLE, `stream closed without a gRPC status (http2 code ${st.rstCode})`));
        } else if (status[0] !== 0) {
          reject(new GrpcError(status[0], status[1]));
        } else {
          const body = chunks ? Buffer.concat(chunks) : data ?? Buffer.alloc(0);
          if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5) reject(new Error('malformed gRPC response body'));
          else resolve(body.subarray(5));
        }
      });
      st.end(frame(req));
    });
  }

  stream(path: string): LockStep {
    const st = this.request(path);
    const waiting: Array<{ resolve: (b: Buffer) => void; reject: (e: Error) => void }> = [];
    const reader = new MessageReader();
    let failed: Error | undefined;
    let status: [number, string] | undefined;
    const fail = (e: Error): void => {
      failed ??= e;
      for (const w of waiting.splice(0)) w.reject(failed);
    };
    st.on('response', (h) => { status = statusOf(h) ?? status; });
    st.on('trailers', (h) => { status = statusOf(h) ?? status; });
    st.on('data', (c: Buffer) => {
      try {
        reader.push(c, (m) => waiting.shift()?.resolve(Buffer.from(m)));
      } catch (err) {
        fail(err as Error);
      }
    });
    st.on('error', () => undefined);
    st.on('close', () => fail(status && status[0] !== 0 ? new GrpcError(status[0], status[1]) : new Error('stream ended by the server')));
    return {
      send(req: Buffer): Promise<Buffer> {
        if (failed) return Promise.reject(failed);
        return new Promise<Buffer>((resolve, reject) => {
          waiting.push({ resolve, reject });
          st.write(frame(req));
        });
      },
      close(): void {
        failed ??= new Error('closed');
        st.close(http2.constants.NGHTTP2_CANCEL);
      },
    };
  }

  close(): void {
    this.session.destroy();
  }
}

class GrpcJsConn implements Conn {
  private readonly client: grpc.Client;

  constructor(endpoint: string, i: number, private readonly timeoutMs: number) {
    this.client = new grpc.Client(endpoint, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      // Distinct options keep grpc-js from sharing one channel between these clients.
      'grpc.bench_conn': i,
    });
  }

  ready(deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.client.waitForReady(deadline, (err) => (err ? reject(err) : resolve()));
    });
  }

  unary(path: string, req: Buffer, timeoutMs = this.timeoutMs): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const cb = (err: grpc.ServiceError | null, res?: Buffer): void => {
        if (err) reject(err);
        else resolve(res!);
      };
      this.client.makeUnaryRequest(path, identity, identity, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, cb);
    });
  }

  stream(path: string): LockStep {
    const stream = this.client.makeBidiStreamRequest(path, identity, identity);
    const waiting: Array<{ resolve: (b: Buffer) => void; reject: (e: Error) => void }> = [];
    let failed: Error | undefined;
    const fail = (e: Error): void => {
      failed ??= e;
      for (const w of waiting.splice(0)) w.reject(failed);
    };
    stream.on('data', (b: Buffer) => waiting.shift()?.resolve(b));
    stream.on('error', (e: Error) => fail(e));
    stream.on('end', () => fail(new Error('stream ended by the server')));
    return {
      send(req: Buffer): Promise<Buffer> {
        if (failed) return Promise.reject(failed);
        return new Promise<Buffer>((resolve, reject) => {
          waiting.push({ resolve, reject });
          stream.write(req);
        });
      },
      close(): void {
        failed ??= new Error('closed');
        stream.end();
        stream.cancel();
      },
    };
  }

  close(): void {
    this.client.close();
  }
}

/** A short description of a gRPC error: code name and details. */
export function errorText(err: unknown): string {
  const e = err as Partial<grpc.ServiceError> & Error;
  if (typeof e.code === 'number' && e.details !== undefined) return `${grpc.status[e.code]}: ${e.details}`;
  return e?.message ?? String(err);
}
