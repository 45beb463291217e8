import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { expectGrpcError, rawClients, type Raw } from './helpers/raw.ts';
import { startServer, type TestServer } from './helpers/server.ts';

describe('Auth, as an etcd with authentication disabled', () => {
  let srv: TestServer;
  let raw: Raw;
  before(async () => {
    srv = await startServer();
    raw = rawClients(srv.endpoint);
  });
  after(async () => {
    raw.close();
    await srv.stop();
  });

  it('AuthStatus says disabled, with a header', async () => {
    const r = await raw.call('Auth', 'AuthStatus', {});
    assert.equal(r.enabled, false);
    assert.equal(r.authRevision, '1');
    assert.ok(Number(r.header.revision) >= 1);
  });

  it('Authenticate is refused with etcd\'s "authentication is not enabled"', async () => {
    await expectGrpcError(raw.call('Auth', 'Authenticate', { name: 'root', password: 'x' }),
      grpc.status.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled');
  });

  it('AuthDisable is a no-op; managing users says it is not implemented', async () => {
    const r = await raw.call('Auth', 'AuthDisable', {});
    assert.ok(r.header);
    await expectGrpcError(raw.call('Auth', 'UserAdd', { name: 'u', password: 'p' }),
      grpc.status.UNIMPLEMENTED, 'pgetcd: users, roles and authentication are not implemented yet');
  });

  it('an etcd3 client given credentials gets the same refusal', async () => {
    const etcd = new Etcd3({ hosts: srv.endpoint, auth: { username: 'root', password: 'x' } });
    try {
      await assert.rejects(etcd.get('a').string(), /authentication is not enabled/);
    } finally {
      etcd.close();
    }
  });
});
