import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Logger } from '../log.ts';

/** The connection grpc-js gets for an HTTP/2 client (see the authority fix that follows). */
export async function h2Gate(socket: Socket, _log?: Logger): Promise<Duplex | undefined> {
  return socket;
}
