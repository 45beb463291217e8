import http from 'node:http';
import https from 'node:https';
import type tls from 'node:tls';
import type { CertWatcher } from '../net/tls.ts';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../log.ts';
import type { HttpHandler } from './app.ts';

/** A slow or stuck client gets this long to send its headers, and its whole request. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

export interface HttpListener {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `handler` on one listen URL (etcd's --listen-metrics-urls form, http://host:port).
 * The one place an HTTP listener is built from a URL: https:// is added here with TLS settings.
 */
export async function listenHttp(url: string, handler: HttpHandler, log: Logger, secure?: { options: tls.TlsOptions; watcher?: CertWatcher | undefined }): Promise<HttpListener> {
  const u = new URL(url.includes('://') ? url : `http://${url}`);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${url}: only http:// and https:// listen URLs are supported`);
  if (u.protocol === 'https:' && !secure) throw new Error(`${url}: https needs --cert-file and --key-file`);
  const timeouts = { requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: HEADERS_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS };
  let server: http.Server;
  if (u.protocol === 'https:') {
    // The client port's certificate (etcd's way), HTTP/1.1 only, reloaded with it.
    const s = https.createServer({ ...secure!.options, ALPNProtocols: ['http/1.1'], ...timeouts }, handler);
    secure!.watcher?.add(s);
    server = s;
  } else {
    server = http.createServer(timeouts, handler);
  }
  guard(server);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(u.port || (u.protocol === 'https:' ? 443 : 80)), host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ listen: url, port }, 'serving metrics and health');
  return {
    url,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/** Garbage, a header flood or a request too slow to arrive: answer when the socket still can, then drop it. */
export function guard(server: http.Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout'
      : err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
}
