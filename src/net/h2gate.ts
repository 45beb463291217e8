/**
 * Makes nghttp2 (node's HTTP/2) accept every `:authority` that etcd's Go server accepts.
 *
 * etcd clients that dial one endpoint at a time (etcdctl endpoint status/hashkv/defrag,
 * clientv3's Status as kube-apiserver calls it) send the endpoint as given, so `:authority` is
 * `http://127.0.0.1:2379`. nghttp2 checks that the value holds only RFC 3986 authority
 * characters and resets the stream with PROTOCOL_ERROR before any JavaScript sees it; node
 * offers no option to turn that check off (nghttp2_option_set_no_http_messaging is not reachable
 * from JavaScript in node 20), so the headers must be fixed before nghttp2 reads them.
 *
 * HPACK is stateful, so fixing one header block means taking over the connection's header
 * decoding. Most connections never need it, and they must not pay for it:
 *
 * 1. Gate: the server sends an empty SETTINGS frame at once (grpc-go waits for the server's
 *    SETTINGS before its first request; node's client does not) and reads the client's frames
 *    until it has both the ACK of that SETTINGS and the first request's headers.
 * 2. If every request so far carries an authority nghttp2 accepts, the bytes read are put back
 *    (minus that ACK, which nghttp2 never asked for) and nghttp2 gets the socket itself: no
 *    cost per request afterwards.
 * 3. Otherwise, or if the client sends anything unusual before the gate has decided (DATA
 *    before any request, a PUSH_PROMISE, a GOAWAY...), the connection goes through a shim for
 *    its whole life: client frames are parsed in JavaScript, every header block is decoded with
 *    the client's table and written again as plain literals with `:authority` fixed; other
 *    frames pass through unchanged. (Until this was measured, a client that sent a request
 *    body before its SETTINGS ACK, or waited a second before its first request, was shimmed:
 *    a third of the server's CPU per put at 100 clients went to the shim's extra copy and
 *    write.)
 *
 * A client may connect long before its first request (a pool dialled at start-up, grpc-go's
 * keepalive pinging an idle connection): the gate answers PINGs itself meanwhile (the PING
 * never reaches nghttp2), and after a second without a request hands the connection to nghttp2
 * as it is, since a client that waits for the ACK of its own SETTINGS before its first request
 * would otherwise wait forever. The clients that send URL authorities (Go's, dialling one
 * endpoint for Status, HashKV or Defragment) send their request as soon as they are connected.
 *
 * A connection whose first request is acceptable and a later one is not still gets the reset;
 * no etcd client changes its authority on one connection.
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { Logger } from '../log.ts';
import { encodeLiterals, HpackDecoder, type HeaderList } from './hpack.ts';
import { H2_PREFACE } from './sniff.ts';

const FRAME_HEADER_BYTES = 9;
const DATA = 0x0, HEADERS = 0x1, PRIORITY = 0x2, RST_STREAM = 0x3, SETTINGS = 0x4, PING = 0x6, WINDOW_UPDATE = 0x8, CONTINUATION = 0x9;
const FLAG_ACK = 0x1, FLAG_END_STREAM = 0x1, FLAG_END_HEADERS = 0x4, FLAG_PADDED = 0x8, FLAG_PRIORITY = 0x20;
/** What a server may send in one frame before the peer says otherwise (RFC 9113 §4.2). */
const DEFAULT_MAX_FRAME = 16_384;
/** Header table size we let clients use: nghttp2's default, which node keeps. */
const HEADER_TABLE_LIMIT = 4096;
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);

/**
 * RFC 3986 authority characters: the set nghttp2 lets through in `:authority` and `host`
 * (it also refuses an empty `:authority`).
 */
const AUTHORITY_OK = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]+$/;

export function authorityAccepted(v: string): boolean {
  return AUTHORITY_OK.test(v);
}

/**
 * `http://127.0.0.1:2379` → `127.0.0.1:2379`; otherwise the characters nghttp2 accepts, or
 * `localhost` if none are left. pgetcd never reads the value: it only has to pass nghttp2.
 */
export function fixAuthority(v: string): string {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(v);
  const host = [...(m ? m[1]! : v)].filter((c) => authorityAccepted(c)).join('');
  return host === '' ? 'localhost' : host;
}

/** The header list nghttp2 will accept, or undefined if `h` is already fine. */
export function fixHeaders(h: HeaderList): HeaderList | undefined {
  let changed = false;
  let authority = false;
  let host = false;
  const out: HeaderList = h.map(([n, v]) => {
    if (n === ':authority') {
      authority = true;
      if (!authorityAccepted(v)) { changed = true; return [n, fixAuthority(v)]; }
    } else if (n === 'host') {
      host = true;
      if (!authorityAccepted(v)) { changed = true; return [n, fixAuthority(v)]; }
    }
    return [n, v];
  });
  // nghttp2 requires :authority or host on a request; Go's server does not.
  if (!authority && !host) {
    const i = out.findIndex(([n]) => !n.startsWith(':'));
    out.splice(i === -1 ? out.length : i, 0, [':authority', 'localhost']);
    changed = true;
  }
  return changed ? out : undefined;
}

interface Frame { type: number; flags: number; stream: number; start: number; end: number }

/** The next whole frame in `buf` at `pos`, or undefined if it has not all arrived. */
function frameAt(buf: Buffer, pos: number): Frame | undefined {
  if (buf.length - pos < FRAME_HEADER_BYTES) return undefined;
  const len = buf.readUIntBE(pos, 3);
  const end = pos + FRAME_HEADER_BYTES + len;
  if (end > buf.length) return undefined;
  return { type: buf[pos + 3]!, flags: buf[pos + 4]!, stream: buf.readUInt32BE(pos + 5) & 0x7fffffff, start: pos, end };
}

/** The header block fragment of a HEADERS frame (without padding and priority fields). */
function headersFragment(buf: Buffer, f: Frame): Buffer {
  let start = f.start + FRAME_HEADER_BYTES;
  let end = f.end;
  if (f.flags & FLAG_PADDED) {
    const pad = buf[start]!;
    start += 1;
    end -= pad;
  }
  if (f.flags & FLAG_PRIORITY) start += 5;
  if (start > end) throw new Error('HEADERS frame padding exceeds its payload');
  return buf.subarray(start, end);
}

function frameHeader(len: number, type: number, flags: number, stream: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUIntBE(len, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return h;
}

/** A header block as HEADERS (+ CONTINUATION) frames no larger than the default frame size. */
function headersFrames(block: Buffer, stream: number, endStream: boolean): Buffer[] {
  const out: Buffer[] = [];
  for (let pos = 0, first = true; first || pos < block.length; first = false) {
    const part = block.subarray(pos, pos + DEFAULT_MAX_FRAME);
    pos += part.length;
    const last = pos >= block.length;
    const flags = (last ? FLAG_END_HEADERS : 0) | (first && endStream ? FLAG_END_STREAM : 0);
    out.push(frameHeader(part.length, first ? HEADERS : CONTINUATION, flags, stream), part);
  }
  return out;
}

/**
 * Reads header blocks out of a client's frame stream: collects a HEADERS frame and its
 * CONTINUATIONs and decodes the block with the connection's decoder.
 */
class BlockReader {
  readonly decoder = new HpackDecoder(HEADER_TABLE_LIMIT);
  private parts: Buffer[] = [];
  private stream = 0;
  private endStream = false;

  /** Feeds a HEADERS or CONTINUATION frame; returns the block once END_HEADERS arrives. */
  feed(buf: Buffer, f: Frame): { stream: number; endStream: boolean; headers: HeaderList } | undefined {
    if (f.type === HEADERS) {
      this.parts = [headersFragment(buf, f)];
      this.stream = f.stream;
      this.endStream = (f.flags & FLAG_END_STREAM) !== 0;
    } else {
      if (this.parts.length === 0 || f.stream !== this.stream) throw new Error('CONTINUATION without HEADERS');
      this.parts.push(buf.subarray(f.start + FRAME_HEADER_BYTES, f.end));
    }
    if ((f.flags & FLAG_END_HEADERS) === 0) return undefined;
    const block = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.parts = [];
    return { stream: this.stream, endStream: this.endStream, headers: this.decoder.decode(block) };
  }

  get inBlock(): boolean {
    return this.parts.length > 0;
  }
}

export interface GateOptions {
  log?: Logger;
  /** Still no whole first request and ACK this long after the preface: native (default 1 s). */
  decideAfterMs?: number;
}

/**
 * Resolves with what grpc-js should be given for this HTTP/2 connection: the socket itself,
 * or a shim in front of it; undefined if the connection ended first. The socket's unread bytes
 * start with the client preface (sniff.ts put it back).
 */
export function h2Gate(socket: Socket, opts: GateOptions = {}): Promise<Duplex | undefined> {
  return new Promise((resolve) => {
    const reader = new BlockReader();
    let acc: Buffer = Buffer.alloc(0);
    let pos = H2_PREFACE.length;
    let ack: Frame | undefined;
    /** Frames nghttp2 must not see: the ACK of the gate's SETTINGS, PINGs the gate answered. */
    const answered: Frame[] = [];
    let requests = 0;
    let allAccepted = true;
    let done = false;

    const finish = (mode: 'native' | 'shim' | 'closed'): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onClosed);
      socket.off('close', onClosed);
      if (mode === 'closed') { resolve(undefined); return; }
      // nghttp2 never sent the SETTINGS this ACK answers and the PINGs are answered: it must
      // not see them.
      const bytes = answered.length === 0 ? acc : without(acc, answered);
      if (mode === 'native') {
        socket.pause();
        socket.unshift(bytes);
        resolve(socket);
      } else {
        opts.log?.debug({ remote: socket.remoteAddress }, 'HTTP/2 connection rewrites its headers');
        resolve(new AuthorityShim(socket, bytes, ack !== undefined));
      }
    };

    const onData = (chunk: Buffer): void => {
      acc = acc.length === 0 ? chunk : Buffer.concat([acc, chunk]);
      try {
        for (let f = frameAt(acc, pos); f; f = frameAt(acc, pos)) {
          pos = f.end;
          if (f.type === SETTINGS && (f.flags & FLAG_ACK) && !ack) {
            ack = f;
            answered.push(f);
          } else if (f.type === PING && !reader.inBlock) {
            if (f.end - f.start !== FRAME_HEADER_BYTES + 8 || f.stream !== 0) { finish('shim'); return; }
            // A PING's ACK flag answers ours; we send none, so only a request is answered.
            if (!(f.flags & FLAG_ACK)) socket.write(Buffer.concat([frameHeader(8, PING, FLAG_ACK, 0), acc.subarray(f.start + FRAME_HEADER_BYTES, f.end)]));
            answered.push(f);
          } else if (f.type === HEADERS || f.type === CONTINUATION) {
            const b = reader.feed(acc, f);
            if (b) {
              requests++;
              if (fixHeaders(b.headers)) allAccepted = false;
            }
          } else if (reader.inBlock || !(f.type === SETTINGS || f.type === WINDOW_UPDATE || f.type === PRIORITY
            // A client that did not wait for the server's SETTINGS sends its first requests'
            // bodies (and maybe cancels) before it ACKs them: normal once a request was seen.
            || (requests > 0 && (f.type === DATA || f.type === RST_STREAM)))) {
            finish('shim');
            return;
          }
          if (ack && requests > 0 && !reader.inBlock) {
            finish(allAccepted ? 'native' : 'shim');
            return;
          }
        }
      } catch {
        // Not decodable by us: let nghttp2 judge the bytes as they are.
        finish('native');
      }
    };
    const onClosed = (): void => finish('closed');
    const timer = setTimeout(() => finish(requests > 0 && !allAccepted ? 'shim' : 'native'), opts.decideAfterMs ?? 1000);

    if (!acc.length && socket.readableLength === 0 && socket.destroyed) { finish('closed'); return; }
    socket.write(EMPTY_SETTINGS);
    socket.on('data', onData);
    socket.once('end', onClosed);
    socket.once('close', onClosed);
    socket.resume();
  });
}

/** `buf` without the given frames (in order of position). */
function without(buf: Buffer, frames: readonly Frame[]): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  for (const f of frames) {
    parts.push(buf.subarray(pos, f.start));
    pos = f.end;
  }
  parts.push(buf.subarray(pos));
  return Buffer.concat(parts);
}

/**
 * The connection as nghttp2 sees it when headers need fixing: client bytes are parsed frame by
 * frame, header blocks rewritten (fixHeaders, then literals without indexing, so nghttp2's
 * table stays empty and in step), everything else forwarded; server bytes go straight out.
 */
class AuthorityShim extends Duplex {
  private readonly reader = new BlockReader();
  private pending: Buffer = Buffer.alloc(0);
  private prefaceLeft = H2_PREFACE.length;

  constructor(private readonly socket: Socket, initial: Buffer, private ackDropped: boolean) {
    super();
    socket.on('data', (chunk: Buffer) => this.input(chunk));
    socket.once('end', () => this.push(null));
    socket.once('close', () => this.destroy());
    socket.on('error', (err) => this.destroy(err));
    this.input(initial);
  }

  get remoteAddress(): string | undefined { return this.socket.remoteAddress; }
  get remotePort(): number | undefined { return this.socket.remotePort; }

  private input(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    let pos = 0;
    if (this.prefaceLeft > 0) {
      const n = Math.min(this.prefaceLeft, buf.length);
      out.push(buf.subarray(0, n));
      this.prefaceLeft -= n;
      pos = n;
    }
    try {
      for (let f = frameAt(buf, pos); f; f = frameAt(buf, pos)) {
        if (f.type === HEADERS || f.type === CONTINUATION) {
          const b = this.reader.feed(buf, f);
          if (b) out.push(...headersFrames(encodeLiterals(fixHeaders(b.headers) ?? b.headers), b.stream, b.endStream));
        } else if (f.type === SETTINGS && (f.flags & FLAG_ACK) && !this.ackDropped) {
          this.ackDropped = true;
        } else {
          // DATA and every other frame pass through as they are.
          out.push(buf.subarray(f.start, f.end));
        }
        pos = f.end;
      }
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    this.pending = pos < buf.length ? buf.subarray(pos) : Buffer.alloc(0);
    if (out.length > 0 && !this.push(out.length === 1 ? out[0] : Buffer.concat(out))) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.socket.write(chunk)) cb();
    else this.socket.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(cb);
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}
