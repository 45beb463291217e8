/**
 * The client port: one TCP listener per etcd-style URL that serves gRPC and HTTP/1.1 on the same
 * port, as etcd does (etcd's cmux): each accepted connection is classified by its first bytes
 * (sniff.ts); HTTP/2 connections go to grpc-js through a connection injector, HTTP/1.1 ones to
 * a plain request handler (the Fastify app's routing: /metrics, /health, /version…).
 *
 * TLS (https:// URLs) slots in before the sniffing, without changing the rest: a `tls.Server`
 * (node:tls, certificates from config, ALPN `['h2', 'http/1.1']`) terminates TLS and hands its
 * TLSSocket to `route()`: ALPN `h2` → the gRPC path, `http/1.1` → the HTTP path, no ALPN → sniff
 * the decrypted bytes exactly as for plain connections. grpc-js's injector gets the decrypted
 * socket with insecure credentials (it never sees TLS), so peer-certificate checks (mTLS) belong
 * to the TLS server's options (`requestCert`, `rejectUnauthorized`) and certificate reload to
 * its `setSecureContext`.
 */
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log.ts';
import { h2Gate } from './h2gate.ts';
import { sniff, type Protocol } from './sniff.ts';
import { parseListenUrl } from './url.ts';
import type { CertWatcher } from './tls.ts';

export type HttpHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export interface ListenOptions {
  /** Serves every HTTP/2 connection (gRPC). */
  grpc: grpc.Server;
  /** Serves HTTP/1.1 requests; without it they get 404. */
  http?: HttpHandler;
  log?: Logger;
  /** A connection that sends nothing for this long is closed (default 30 s). */
  sniffTimeoutMs?: number;
  /** Required for https:// URLs: the TLS server options and the watcher that reloads them. */
  tls?: { options: tls.TlsOptions; watcher?: CertWatcher };
}

export interface Listener {
  /** The URL as configured. */
  readonly url: string;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /**
   * Stops accepting, ends HTTP/1.1 connections once their request is answered, and resolves
   * when every connection is gone; HTTP/2 sessions end when the gRPC server shuts down, and any
   * connection still open after `graceMs` is destroyed.
   */
  close(graceMs?: number): Promise<void>;
}

export async function listen(url: string, opts: ListenOptions): Promise<Listener> {
  const u = parseListenUrl(url);
  if (u.scheme === 'https' && !opts.tls) throw new Error(`listen URL "${url}": https needs --cert-file and --key-file`);
  const log = opts.log;
  const sniffTimeoutMs = opts.sniffTimeoutMs ?? 30_000;
  const injector = opts.grpc.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const handler: HttpHandler = opts.http ?? ((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');
  });
  const httpServer = http.createServer(handler);
  httpServer.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) { socket.destroy(); return; }
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  const sockets = new Set<net.Socket>();

  const route = (socket: net.Socket, p: Protocol): void => {
    if (p === 'http1') {
      httpServer.emit('connection', socket);
      // node's HTTP parser reads the socket natively; the sniffed bytes wait in the stream's
      // buffer, which only flows (to the parser's 'data' listener, before new reads) on resume.
      socket.resume();
      return;
    }
    h2Gate(socket, { log }).then((conn) => {
      if (conn) injector.injectConnection(conn);
    }, (err: unknown) => {
      log?.debug({ err }, 'HTTP/2 connection failed before gRPC took it');
      socket.destroy();
    });
  };

  const accept = (socket: net.Socket): void => {
    sniff(socket, sniffTimeoutMs).then((p) => {
      if (p === undefined || socket.destroyed) { socket.destroy(); return; }
      route(socket, p);
    }, () => socket.destroy());
  };
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // A reset during sniffing or before the next owner listens must not crash the process.
    socket.on('error', (err) => log?.debug({ err }, 'client connection error'));
  };

  let server: net.Server;
  if (u.scheme === 'https') {
    // TLS first; ALPN says which protocol follows (clients without ALPN are sniffed as in plain).
    const tlsServer = tls.createServer({ ...opts.tls!.options, pauseOnConnect: false, noDelay: true }, (socket) => {
      socket.on('error', (err) => log?.debug({ err }, 'client connection error'));
      const alpn = socket.alpnProtocol;
      if (alpn === 'h2') route(socket, 'h2');
      else if (alpn === 'http/1.1') { socket.pause(); route(socket, 'http1'); } else accept(socket);
    });
    tlsServer.on('connection', track);
    tlsServer.on('tlsClientError', (err) => log?.debug({ err: err.message }, 'TLS handshake refused'));
    opts.tls!.watcher?.add(tlsServer);
    server = tlsServer;
  } else {
    server = net.createServer({ pauseOnConnect: false, noDelay: true }, (socket) => {
      track(socket);
      accept(socket);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: u.host, port: u.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log?.error({ err, listen: url }, 'client listener error'));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : u.port;

  let closing: Promise<void> | undefined;
  const close = (graceMs = 5000): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => { for (const s of sockets) s.destroy(); }, graceMs);
      server.close(() => { clearTimeout(timer); resolve(); });
      httpServer.closeIdleConnections();
      // Keep-alive HTTP/1.1 connections close after their current response.
      httpServer.on('request', (_req, res) => res.setHeader('connection', 'close'));
      injector.drain(graceMs);
    });
    return closing;
  };
  return { url, port, close };
}
