import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { checkWireFormat } from './wirecheck.ts';

export const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');

/**
 * Decoding options shared by the server and by tests' raw clients: etcd's field names as
 * written in the .proto, int64 as decimal strings (lease IDs use all 64 bits), enums as numbers,
 * proto3 defaults filled in, and `request`/`target_union`-style oneof names.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export type ServiceName = 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance' | 'Auth';

export interface EtcdProto {
  packageDefinition: protoLoader.PackageDefinition;
  services: Record<ServiceName, grpc.ServiceDefinition>;
  clients: Record<ServiceName, grpc.ServiceClientConstructor>;
}

let cached: EtcdProto | undefined;

export function loadEtcdProto(): EtcdProto {
  if (cached) return cached;
  const packageDefinition = protoLoader.loadSync(['etcdserverpb/rpc.proto'], LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as {
    etcdserverpb: Record<ServiceName, grpc.ServiceClientConstructor>;
  };
  const names: ServiceName[] = ['KV', 'Watch', 'Lease', 'Cluster', 'Maintenance', 'Auth'];
  const services = {} as Record<ServiceName, grpc.ServiceDefinition>;
  const clients = {} as Record<ServiceName, grpc.ServiceClientConstructor>;
  for (const n of names) {
    clients[n] = loaded.etcdserverpb[n];
    services[n] = loaded.etcdserverpb[n].service;
  }
  cached = { packageDefinition, services, clients };
  return cached;
}

const sizes = new WeakMap<object, number>();

/** The encoded size of a decoded request (etcd limits requests by encoded bytes). */
export function requestSize(req: object): number {
  return sizes.get(req) ?? 0;
}

/** A copy of a service definition whose decoders remember each request's encoded size. */
export function withRequestSizes(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const [name, method] of Object.entries(def)) {
    const decode = (method as grpc.MethodDefinition<object, object>).requestDeserialize;
    out[name] = {
      ...(method as grpc.MethodDefinition<object, object>),
      requestDeserialize: (buf: Buffer) => {
        checkWireFormat(buf);
        const msg = decode(buf) as object;
        sizes.set(msg, buf.length);
        return msg;
      },
    };
  }
  return out as grpc.ServiceDefinition;
}
