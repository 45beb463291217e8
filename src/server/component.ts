import type * as grpc from '@grpc/grpc-js';
import type { ServiceName } from './proto.ts';

/**
 * A part of the server with its own lifecycle (watch hub, lease keeper, ...). The app starts
 * components after the store and stops them in reverse order before the store closes.
 */
export interface Component {
  /** gRPC services this component serves. */
  services: Partial<Record<ServiceName, grpc.UntypedServiceImplementation>>;
  /** Service definitions to register instead of the .proto's (e.g. a serializer for pre-encoded responses). */
  definitions?: Partial<Record<ServiceName, grpc.ServiceDefinition>>;
  start(): Promise<void>;
  /** Graceful: end streams with a clean status, release connections. */
  stop(): Promise<void>;
}
