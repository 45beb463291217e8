import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadEtcdProto } from '../src/server/proto.ts';
import { RangeResponseEncoder } from '../src/server/rangecodec.ts';
import { decodeKeyValue, encodeKeyValue, withoutValue } from '../src/store/kvbytes.ts';
import type { KeyValue, PackedRangeResponse } from '../src/store/types.ts';
import { randomBytesFrom, rng, seedFromEnv } from './helpers/seed.ts';

/** A key-value in the layout PostgreSQL packs (types.ts PackedRangeResponse), written independently here. */
function packed(kv: KeyValue): Buffer {
  const b = Buffer.alloc(36 + kv.key.length + 4 + kv.value.length);
  b.writeBigInt64BE(BigInt(kv.create_revision), 0);
  b.writeBigInt64BE(BigInt(kv.mod_revision), 8);
  b.writeBigInt64BE(BigInt(kv.version), 16);
  b.writeBigInt64BE(BigInt(kv.lease), 24);
  b.writeUInt32BE(kv.key.length, 32);
  kv.key.copy(b, 36);
  b.writeUInt32BE(kv.value.length, 36 + kv.key.length);
  kv.value.copy(b, 40 + kv.key.length);
  return b;
}

/**
 * The hand-written RangeResponse encoder, from the head cache's per-key mvccpb.KeyValue bytes and
 * from PostgreSQL's packed layout, must decode exactly like protobufjs's own encoding.
 */
describe('RangeResponse encoder and mvccpb.KeyValue bytes', () => {
  const method = loadEtcdProto().services.KV.Range!;
  const decode = (b: Buffer): unknown => method.responseDeserialize(b);
  const seed = seedFromEnv();
  const rand = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;

  function kv(): KeyValue {
    return {
      key: randomBytesFrom(rand, pick([1, 5, 200])),
      create_revision: pick([1, 127, 128, 300, 2 ** 40]),
      mod_revision: pick([1, 16384, 2 ** 45 + 3]),
      version: pick([1, 2, 1000]),
      value: randomBytesFrom(rand, pick([0, 3, 130, 70_000])),
      lease: pick(['0', '1', '7587884529376853000', '-5', '9223372036854775807', '-9223372036854775808']),
    };
  }

  it('KeyValue bytes decode back to the same key-value', (t) => {
    t.diagnostic(`seed ${seed} (PGETCD_TEST_SEED=${seed} to rerun)`);
    for (let i = 0; i < 500; i++) {
      const x = kv();
      assert.deepEqual(decodeKeyValue(encodeKeyValue(x)), x);
      assert.deepEqual(decodeKeyValue(withoutValue(encodeKeyValue(x))), { ...x, value: Buffer.alloc(0) });
    }
  });

  it('matches protobufjs for random responses, from both sources', (t) => {
    t.diagnostic(`seed ${seed} (PGETCD_TEST_SEED=${seed} to rerun)`);
    for (const [cluster, member] of [['0', '1'], ['18446744073709551615', '9223372036854775808']]) {
      const enc = new RangeResponseEncoder(cluster, member, 2);
      for (let i = 0; i < 200; i++) {
        const kvs = Array.from({ length: pick([0, 1, 3, 40]) }, kv);
        const revision = pick([1, 99, 2 ** 35]);
        const more = pick([false, true]);
        const count = kvs.length + pick([0, 0, 5, 300]);
        const theirs = decode(method.responseSerialize({
          header: { cluster_id: cluster, member_id: member, revision, raft_term: 2 }, kvs, more, count,
        }));
        const base = { header: { revision }, kvs: kvs.length, more, count };
        const fromCache: PackedRangeResponse = { ...base, packed: Buffer.alloc(0), entries: kvs.map(encodeKeyValue) };
        // The SQL reader may pack one key more than the answer holds (to tell `more`).
        const extra = pick([[], [kv()]]);
        const fromSql: PackedRangeResponse = { ...base, packed: Buffer.concat([...kvs, ...extra].map(packed)) };
        assert.deepEqual(decode(enc.encodePacked(fromCache)), theirs);
        assert.deepEqual(decode(enc.encodePacked(fromSql)), theirs);
        assert.deepEqual(enc.encodePacked(fromCache), enc.encodePacked(fromSql));
      }
    }
  });
});
