import { crc32 } from 'node:zlib';
import { createSql, type Sql } from '../db/sql.ts';
import type { PgTarget } from '../db/target.ts';
import { StoreError } from '../store/errors.ts';
import { dbCall } from '../store/pgerrors.ts';

export interface StoreHash {
  hash: number;
  /** The store's current revision (etcd's HashKV header carries it, not the hashed revision). */
  revision: number;
  /** etcd reports -1 while nothing was ever compacted. */
  compactRevision: number;
}

interface LogRow {
  mod_revision: number;
  sub: number;
  create_revision: number;
  version: number;
  lease: string;
  deleted: boolean;
  key: Buffer;
  value: Buffer;
}

/**
 * A CRC-32 over the MVCC history in (compact revision, revision], in revision order: every
 * instance on one database computes the same value for the same revision, whatever physical
 * compaction has already removed. The value is pgetcd's own (etcd hashes its bbolt encoding),
 * so compare it only between pgetcd instances. One REPEATABLE READ snapshot; rows are streamed.
 */
export async function hashKV(target: PgTarget, revision: number): Promise<StoreHash> {
  // A client of its own with plain BEGIN/COMMIT statements rather than sql.begin on the pool:
  // postgres.js 3.4 can throw an uncatchable error when a reserved connection's backend dies.
  const sql = createSql(target, { max: 1 });
  try {
    return await dbCall(async () => {
      await sql`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`;
      const [m] = (await sql`SELECT revision, compact_revision FROM meta WHERE id = 1`) as unknown as Array<{ revision: number; compact_revision: number }>;
      if (!m) throw new Error('meta row missing');
      // etcd: a revision below the compact revision is compacted, above the current one is future.
      if (revision > 0 && revision < m.compact_revision) throw new StoreError('Compacted');
      if (revision > m.revision) throw new StoreError('FutureRev');
      const upTo = revision > 0 ? revision : m.revision;
      let h = crc32('pgetcd kv_log'); // seeded, so an empty history does not hash to 0
      const cursor = sql`
        SELECT mod_revision, sub, create_revision, version, lease::text AS lease, deleted, key, value
        FROM kv_log WHERE mod_revision > ${m.compact_revision} AND mod_revision <= ${upTo}
        ORDER BY mod_revision, sub`.cursor(1000) as unknown as AsyncIterable<LogRow[]>;
      for await (const rows of cursor) for (const r of rows) h = crc32(encodeRow(r), h);
      await sql`COMMIT`;
      return { hash: h >>> 0, revision: m.revision, compactRevision: m.compact_revision === 0 ? -1 : m.compact_revision };
    });
  } finally {
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}

/** Hash of the whole store: the history as in hashKV at the current revision, then every lease (ID and TTL). */
export async function hashAll(sql: Sql, target: PgTarget): Promise<StoreHash> {
  const kv = await hashKV(target, 0);
  const leases = (await dbCall(() => sql`SELECT id::text AS id, ttl FROM leases ORDER BY id`)) as unknown as Array<{ id: string; ttl: number }>;
  let h = kv.hash;
  const b = Buffer.alloc(16);
  for (const l of leases) {
    b.writeBigInt64BE(BigInt(l.id), 0);
    b.writeBigInt64BE(BigInt(l.ttl), 8);
    h = crc32(b, h);
  }
  return { ...kv, hash: h >>> 0 };
}

function encodeRow(r: LogRow): Buffer {
  const head = Buffer.alloc(8 + 4 + 8 + 8 + 8 + 1 + 4);
  let o = 0;
  o = head.writeBigInt64BE(BigInt(r.mod_revision), o);
  o = head.writeInt32BE(r.sub, o);
  o = head.writeBigInt64BE(BigInt(r.create_revision), o);
  o = head.writeBigInt64BE(BigInt(r.version), o);
  o = head.writeBigInt64BE(BigInt(r.lease), o);
  o = head.writeUInt8(r.deleted ? 1 : 0, o);
  head.writeUInt32BE(r.key.length, o);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(r.value.length, 0);
  return Buffer.concat([head, r.key, len, r.value]);
}
