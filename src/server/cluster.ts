import * as grpc from '@grpc/grpc-js';
import type { Member, MemberRegistry } from '../members/registry.ts';
import { unary, type ServerContext } from './context.ts';
import { CLUSTER_ERRORS, RpcError } from './errors.ts';
import type { Int64 } from './wire.ts';

interface WireMemberId { ID: Int64 }

const FOLLOWS = 'pgetcd: membership follows running instances (they share state through PostgreSQL, not Raft)';

/**
 * etcdserverpb.Cluster: the members are the pgetcd instances running on this database (see
 * MemberRegistry). Changes answer with etcd's errors where etcd has one (unknown member, not a
 * learner, last member) and otherwise say how membership changes: start or stop an instance.
 * The header carries no revision, like etcd's ClusterServer.
 */
export function clusterService(ctx: ServerContext, registry: MemberRegistry): grpc.UntypedServiceImplementation {
  const header = () => ctx.header(0);
  const wire = (m: Member) => ({ ID: m.id, name: m.name, peerURLs: [] as string[], clientURLs: m.clientUrls, isLearner: false });
  /** The live member with this ID, or etcd's "member not found". */
  const find = async (id: Int64): Promise<{ member: Member; count: number }> => {
    const members = await registry.list();
    const member = members.find((m) => m.id === String(id));
    if (!member) throw new RpcError(CLUSTER_ERRORS.MemberNotFound);
    return { member, count: members.length };
  };
  return {
    MemberList: unary(ctx, async () => ({ header: header(), members: (await registry.list()).map(wire) })),
    MemberAdd: unary(ctx, async () => {
      throw unimplemented(`${FOLLOWS}: start another pgetcd instance on the same database to add a member`);
    }),
    MemberRemove: unary(ctx, async (req: WireMemberId) => {
      const { member, count } = await find(req.ID);
      if (count === 1) throw new RpcError(CLUSTER_ERRORS.MemberNotEnoughStarted);
      throw new RpcError({ code: grpc.status.FAILED_PRECONDITION, details: `${FOLLOWS}: stop the instance named ${JSON.stringify(member.name)} to remove it` });
    }),
    MemberUpdate: unary(ctx, async (req: WireMemberId) => {
      await find(req.ID);
      throw unimplemented(`${FOLLOWS}: members have no peer URLs to update; client URLs come from --advertise-client-urls`);
    }),
    MemberPromote: unary(ctx, async (req: WireMemberId) => {
      await find(req.ID);
      throw new RpcError(CLUSTER_ERRORS.MemberNotLearner);
    }),
  };
}

export function unimplemented(details: string): RpcError {
  return new RpcError({ code: grpc.status.UNIMPLEMENTED, details });
}
