import type * as grpc from '@grpc/grpc-js';
import type { ServerContext } from './context.ts';
import { toGrpcError, type GrpcError } from './errors.ts';

/** A handler's answer that is a gRPC status rather than a store error (membership, UNIMPLEMENTED...). */
export class RpcError extends Error {
  constructor(readonly status: GrpcError) {
    super(status.details);
    this.name = 'RpcError';
  }
}

/** Like `unary` in context.ts, and an RpcError becomes its own status. */
export function unaryRpc<Req extends object, Res>(ctx: ServerContext, f: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    f(call.request).then(
      (res) => callback(null, res),
      (err: unknown) => callback(err instanceof RpcError ? err.status : toGrpcError(err, ctx.log)),
    );
  };
}
