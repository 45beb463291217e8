import * as grpc from '@grpc/grpc-js';
import { unary, type ServerContext } from './context.ts';
import { CLUSTER_ERRORS, RpcError } from './errors.ts';
import type { Int64 } from './wire.ts';

interface WireMemberId { ID: Int64 }

/**
 * etcdserverpb.Cluster as a one-member etcd answers it: every pgetcd instance is its own
 * one-member cluster view (instances share the database, not a Raft group). Its header carries
 * no revision, like etcd's ClusterServer.
 */
export function clusterService(ctx: ServerContext): grpc.UntypedServiceImplementation {
  const self = {
    ID: ctx.memberId,
    name: ctx.cfg.name,
    peerURLs: [] as string[],
    clientURLs: ctx.cfg.advertiseClientUrls,
    isLearner: false,
  };
  const header = () => ctx.header(0);
  /** Unknown IDs get etcd's "member not found"; this member gets `onSelf`. */
  const onMember = (id: Int64, onSelf: RpcError): never => {
    throw id === ctx.memberId ? onSelf : new RpcError(CLUSTER_ERRORS.MemberNotFound);
  };
  return {
    MemberList: unary(ctx, async () => ({ header: header(), members: [self] })),
    MemberAdd: unary(ctx, async () => {
      throw unimplemented('pgetcd: members cannot be added: pgetcd instances share state through PostgreSQL, not Raft; start another instance on the same database instead');
    }),
    MemberRemove: unary(ctx, async (req: WireMemberId) => onMember(req.ID, new RpcError(CLUSTER_ERRORS.MemberNotEnoughStarted))),
    MemberUpdate: unary(ctx, async (req: WireMemberId) => onMember(req.ID, unimplemented('pgetcd: members have no peer URLs to update'))),
    MemberPromote: unary(ctx, async (req: WireMemberId) => onMember(req.ID, new RpcError(CLUSTER_ERRORS.MemberNotLearner))),
  };
}

export function unimplemented(details: string): RpcError {
  return new RpcError({ code: grpc.status.UNIMPLEMENTED, details });
}
