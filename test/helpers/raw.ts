import * as grpc from '@grpc/grpc-js';
import { loadEtcdProto, type ServiceName } from '../../src/server/proto.ts';

/**
 * Raw gRPC clients built from our .proto (no etcd client library in between), for pinning the
 * exact wire behaviour: headers, field values, status codes and messages.
 */
export type Raw = Record<ServiceName, grpc.Client> & {
  /** Calls a unary method; resolves with the decoded response or rejects with a grpc ServiceError. */
  call<T = any>(service: ServiceName, method: string, req: object): Promise<T>;
  close(): void;
};

export function rawClients(endpoint: string, creds: grpc.ChannelCredentials = grpc.credentials.createInsecure()): Raw {
  const proto = loadEtcdProto();
  const opts = { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 };
  const clients = {} as Record<ServiceName, grpc.Client>;
  for (const n of ['KV', 'Watch', 'Lease', 'Cluster', 'Maintenance', 'Auth'] as ServiceName[]) {
    clients[n] = new proto.clients[n](endpoint, creds, opts);
  }
  return {
    ...clients,
    call<T>(service: ServiceName, method: string, req: object): Promise<T> {
      const c = clients[service] as unknown as Record<string, (req: object, cb: (err: grpc.ServiceError | null, res: T) => void) => void>;
      const f = c[method];
      if (!f) throw new Error(`no method ${service}.${method}`);
      return new Promise<T>((resolve, reject) => f.call(c, req, (err, res) => (err ? reject(err) : resolve(res))));
    },
    close() {
      for (const c of Object.values(clients)) c.close();
    },
  };
}

/** Asserts a promise rejects with a gRPC status code and exact message. */
export async function expectGrpcError(p: Promise<unknown>, code: grpc.status, details: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    if (e.code !== code || e.details !== details) {
      throw new Error(`expected ${grpc.status[code]} "${details}", got ${grpc.status[e.code]} "${e.details}"`);
    }
    return;
  }
  throw new Error(`expected ${grpc.status[code]} "${details}", but the call succeeded`);
}
