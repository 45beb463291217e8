import type { Socket } from 'node:net';

/** Every HTTP/2 connection starts with this client preface (RFC 9113 §3.4); gRPC is HTTP/2. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export type Protocol = 'h2' | 'http1';

/**
 * Which protocol a connection speaks, from its first bytes: the HTTP/2 preface, or anything
 * else (an HTTP/1.1 request line). Compares the bytes seen so far with the preface and decides
 * at the first byte that differs or once the whole preface is there, so an HTTP/1.1 request
 * is recognised from its first byte and an HTTP/2 client's preface never waits for more.
 */
export function classify(head: Buffer): Protocol | undefined {
  const n = Math.min(head.length, H2_PREFACE.length);
  for (let i = 0; i < n; i++) if (head[i] !== H2_PREFACE[i]) return 'http1';
  return n === H2_PREFACE.length ? 'h2' : undefined;
}

/**
 * Reads a connection's first bytes, puts them back (`unshift`) and resolves with its protocol;
 * resolves undefined if the socket ends, fails or says nothing for `timeoutMs`. The socket is
 * left paused with every byte still unread, so whoever takes it next (node's HTTP/1.1 parser,
 * or nghttp2, which reads what a socket already buffered) sees the whole stream.
 */
export function sniff(socket: Socket, timeoutMs: number): Promise<Protocol | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (p: Protocol | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (p && chunks.length > 0) socket.unshift(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
      resolve(p);
    };
    const onData = (d: Buffer): void => {
      chunks.push(d);
      const p = classify(chunks.length === 1 ? d : Buffer.concat(chunks));
      if (p) finish(p);
    };
    const onEnd = (): void => finish(undefined);
    const timer = setTimeout(onEnd, timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
    socket.once('close', onEnd);
  });
}
