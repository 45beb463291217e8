import type * as grpc from '@grpc/grpc-js';
import { loadEtcdProto } from '../src/server/proto.ts';
import { bytesField, casTxn, leaseIdRequest, opPut, opRange, putRequest, rangeRequest, scanLease, scanRange, scanTxn } from './pb.ts';

type Method = grpc.MethodDefinition<object, object>;

function method(service: string, name: string): Method {
  const svc = loadEtcdProto().packageDefinition[`etcdserverpb.${service}`] as unknown as Record<string, Method>;
  return svc[name]!;
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`load generator encoding self-check failed: ${what}`);
}

/**
 * Checks the hand-made encodings and response scanners against proto-loader's codecs for our
 * .proto, so that a mistake in pb.ts fails loudly instead of benchmarking the wrong request.
 */
export function selfCheck(): void {
  const key = Buffer.from('/bench/k1');
  /* eslint-disable @typescript-eslint/no-explicit-any */
  const r = method('KV', 'Range').requestDeserialize(rangeRequest(key, { rangeEnd: Buffer.from('/bench0'), limit: 500, revision: 300_000_000_000, serializable: true })) as any;
  check(r.key.equals(key) && r.range_end.toString() === '/bench0' && r.limit === '500' && r.revision === '300000000000' && r.serializable === true, 'RangeRequest');
  const p = method('KV', 'Put').requestDeserialize(putRequest(key, Buffer.from('v'))) as any;
  check(p.key.equals(key) && p.value.toString() === 'v' && p.lease === '0', 'PutRequest');
  const t = method('KV', 'Txn').requestDeserialize(casTxn(bytesField(3, key), 12345, bytesField(2, opPut(key, Buffer.from('v')), true), bytesField(3, opRange(key), true))) as any;
  check(t.compare.length === 1 && t.compare[0].target === 2 && t.compare[0].result === 0 && t.compare[0].mod_revision === '12345'
    && t.compare[0].key.equals(key) && t.success[0].request_put.key.equals(key) && t.failure[0].request_range.key.equals(key), 'TxnRequest (CAS)');
  const l = method('Lease', 'LeaseKeepAlive').requestDeserialize(leaseIdRequest(7587869231095489537n)) as any;
  check(l.ID === '7587869231095489537', 'LeaseKeepAliveRequest');

  const header = { cluster_id: '1', member_id: '2', revision: '987654321012', raft_term: '3' };
  const kv = (k: string, mod: number): object => ({ key: Buffer.from(k), create_revision: '5', mod_revision: String(mod), version: '2', value: Buffer.alloc(300, 1), lease: '0' });
  const rr = scanRange(method('KV', 'Range').responseSerialize({ header, kvs: [kv('a', 77), kv('b', 78)], more: true, count: '12' }));
  check(rr.revision === 987654321012 && rr.kvs === 2 && rr.more && rr.count === 12 && rr.lastKey?.toString() === 'b' && rr.firstModRevision === 77, 'RangeResponse scan');
  const tr = scanTxn(method('KV', 'Txn').responseSerialize({ header, succeeded: false, responses: [{ response_range: { header, kvs: [kv('a', 42)], more: false, count: '1' } }] }));
  check(!tr.succeeded && tr.revision === 987654321012 && tr.range?.firstModRevision === 42, 'TxnResponse scan');
  const ka = scanLease(method('Lease', 'LeaseKeepAlive').responseSerialize({ header, ID: '7587869231095489537', TTL: '60' }));
  check(ka.id === 7587869231095489537n && ka.ttl === 60, 'LeaseKeepAliveResponse scan');
}
