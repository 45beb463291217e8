import { PATHS, type Pool } from './grpc.ts';
import { parallel } from './loop.ts';
import { opPut, prefixEnd, putRequest, scanHeaderRevision, txnAll } from './pb.ts';

/**
 * Keys `prefix` + a zero-padded index, `keySize` bytes long when that is enough room (as with
 * etcd's benchmark --key-size), else just long enough for `space` distinct keys.
 */
export class KeySpace {
  readonly prefix: Buffer;
  readonly end: Buffer;
  readonly width: number;

  constructor(prefix: string, keySize: number, readonly space: number) {
    this.prefix = Buffer.from(prefix);
    this.end = prefixEnd(this.prefix);
    this.width = Math.max(String(Math.max(space - 1, 0)).length, keySize - this.prefix.length, 1);
  }

  key(i: number): Buffer {
    return Buffer.concat([this.prefix, Buffer.from(this.digits(i), 'latin1')]);
  }

  digits(i: number): string {
    return String(i).padStart(this.width, '0');
  }
}

export function value(size: number, seed = 0): Buffer {
  const v = Buffer.alloc(size);
  for (let i = 0; i < size; i++) v[i] = 97 + ((i + seed) % 26);
  return v;
}

/**
 * A pre-encoded PutRequest whose key digits are rewritten in place: one buffer per client,
 * reused for each of its (sequential) requests.
 */
export class PutTemplate {
  private readonly buf: Buffer;
  private readonly at: number;

  constructor(private readonly ks: KeySpace, val: Buffer) {
    const key = ks.key(0);
    this.buf = putRequest(key, val);
    this.at = this.buf.indexOf(key) + ks.prefix.length;
  }

  forKey(i: number): Buffer {
    this.buf.write(this.ks.digits(i), this.at, 'latin1');
    return this.buf;
  }
}

/**
 * Loads keys [0, count) of `ks` with `val`, 100 puts per Txn (below etcd's default
 * --max-txn-ops of 128), 8 Txns in flight. Returns the highest revision seen.
 */
export async function loadKeys(pool: Pool, ks: KeySpace, count: number, val: Buffer, onRevision?: (first: number, n: number, rev: number) => void): Promise<number> {
  const chunks: number[] = [];
  for (let i = 0; i < count; i += 100) chunks.push(i);
  let maxRev = 0;
  await parallel(chunks, 8, async (first, ci) => {
    const n = Math.min(100, count - first);
    const ops: Buffer[] = [];
    for (let j = 0; j < n; j++) ops.push(opPut(ks.key(first + j), val));
    const res = await pool.conn(ci).unary(PATHS.txn, txnAll(ops));
    const rev = scanHeaderRevision(res);
    onRevision?.(first, n, rev);
    if (rev > maxRev) maxRev = rev;
  });
  return maxRev;
}
