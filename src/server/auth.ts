import * as grpc from '@grpc/grpc-js';
import { StoreError } from '../store/errors.ts';
import { unary, type ServerContext } from './context.ts';

const NOT_YET = 'pgetcd: users, roles and authentication are not implemented yet';

/**
 * etcdserverpb.Auth as an etcd whose authentication is disabled answers it: AuthStatus says
 * disabled, Authenticate is refused with etcd's "authentication is not enabled", AuthDisable is a
 * no-op. Managing users and roles and enabling auth answer UNIMPLEMENTED with a clear message
 * rather than pretending.
 */
export function authService(ctx: ServerContext): grpc.UntypedServiceImplementation {
  const header = async (): Promise<object> => ctx.header((await ctx.store.currentRevision()).revision);
  const notYet: grpc.handleUnaryCall<object, object> = (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, details: NOT_YET });
  const impl: grpc.UntypedServiceImplementation = {
    AuthStatus: unary(ctx, async () => ({ header: await header(), enabled: false, authRevision: 1 })),
    AuthDisable: unary(ctx, async () => ({ header: await header() })),
    Authenticate: unary(ctx, async () => { throw new StoreError('AuthNotEnabled'); }),
  };
  for (const m of ['AuthEnable', 'UserAdd', 'UserGet', 'UserList', 'UserDelete', 'UserChangePassword', 'UserGrantRole',
    'UserRevokeRole', 'RoleAdd', 'RoleGet', 'RoleList', 'RoleDelete', 'RoleGrantPermission', 'RoleRevokePermission']) {
    impl[m] = notYet;
  }
  return impl;
}
