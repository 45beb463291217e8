import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { startServer, type TestServer } from './helpers/server.ts';
import { rawClients, type Raw } from './helpers/raw.ts';

describe('KV through the etcd3 client and raw gRPC', () => {
  let srv: TestServer;
  let etcd: Etcd3;
  let raw: Raw;
  before(async () => {
    srv = await startServer();
    etcd = new Etcd3({ hosts: srv.endpoint });
    raw = rawClients(srv.endpoint);
  });
  after(async () => {
    etcd.close();
    raw.close();
    await srv.stop();
  });

  it('a put then a get returns the value with etcd revisions', async () => {
    await etcd.put('foo').value('bar');
    assert.equal(await etcd.get('foo').string(), 'bar');
    const r = await raw.call('KV', 'Range', { key: Buffer.from('foo') });
    assert.equal(r.kvs.length, 1);
    assert.equal(r.kvs[0].version, '1');
    assert.equal(r.header.revision, r.kvs[0].mod_revision);
    assert.equal(r.count, '1');
    assert.notEqual(r.header.cluster_id, '0');
    assert.notEqual(r.header.member_id, '0');
  });
});
