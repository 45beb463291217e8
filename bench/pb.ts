/**
 * A tiny protobuf writer and reader for the few etcd messages the load generator sends and
 * reads. Requests are built once (or from pre-built parts) and responses are scanned for the
 * handful of fields a workload needs, so the generator spends little CPU per request and never
 * materialises a 10,000-key RangeResponse as objects. run.ts checks these encodings against
 * the .proto (proto-loader) at start-up.
 */

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

function varintLength(n: number | bigint): number {
  let v = BigInt(n);
  let len = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    len++;
  }
  return len;
}

function writeVarint(buf: Buffer, pos: number, n: number | bigint): number {
  let v = BigInt(n);
  if (v < 0n) v = BigInt.asUintN(64, v);
  while (v >= 0x80n) {
    buf[pos++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[pos++] = Number(v);
  return pos;
}

export function varint(n: number | bigint): Buffer {
  const b = Buffer.allocUnsafe(varintLength(n));
  writeVarint(b, 0, n);
  return b;
}

/** A varint field; proto3 omits zero values, and so does this. */
export function uintField(field: number, n: number | bigint): Buffer {
  if (BigInt(n) === 0n) return Buffer.alloc(0);
  return Buffer.concat([varint((field << 3) | WIRE_VARINT), varint(n)]);
}

export function boolField(field: number, v: boolean): Buffer {
  return v ? uintField(field, 1) : Buffer.alloc(0);
}

/** A length-delimited field (bytes, string or an embedded message). Empty bytes are omitted. */
export function bytesField(field: number, data: Buffer | string, keepEmpty = false): Buffer {
  const d = typeof data === 'string' ? Buffer.from(data) : data;
  if (d.length === 0 && !keepEmpty) return Buffer.alloc(0);
  return Buffer.concat([varint((field << 3) | WIRE_LEN), varint(d.length), d]);
}

/** An embedded message field (always present, even when empty). */
export function msgField(field: number, ...parts: Buffer[]): Buffer {
  return bytesField(field, Buffer.concat(parts), true);
}

// ---- etcd requests ----

export interface RangeOpts {
  rangeEnd?: Buffer;
  limit?: number;
  revision?: number;
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
}

export function rangeRequest(key: Buffer, o: RangeOpts = {}): Buffer {
  return Buffer.concat([
    bytesField(1, key),
    bytesField(2, o.rangeEnd ?? Buffer.alloc(0)),
    uintField(3, o.limit ?? 0),
    uintField(4, o.revision ?? 0),
    boolField(7, o.serializable ?? false),
    boolField(8, o.keysOnly ?? false),
    boolField(9, o.countOnly ?? false),
  ]);
}

export function putRequest(key: Buffer, value: Buffer, lease: bigint = 0n): Buffer {
  return Buffer.concat([bytesField(1, key), bytesField(2, value), uintField(3, lease)]);
}

/** RequestOp{request_range}. */
export function opRange(key: Buffer, o: RangeOpts = {}): Buffer {
  return msgField(1, rangeRequest(key, o));
}

/** RequestOp{request_put}. */
export function opPut(key: Buffer, value: Buffer): Buffer {
  return msgField(2, putRequest(key, value));
}

/** TxnRequest with no compares: all `ops` (RequestOp encodings) in success. */
export function txnAll(ops: Buffer[]): Buffer {
  return Buffer.concat(ops.map((op) => bytesField(2, op, true)));
}

/**
 * Kubernetes' optimistic update (GuaranteedUpdate): if mod_revision(key) == rev then put, else
 * get. `successOp`/`failureOp` are pre-encoded RequestOps; only the compare changes per call.
 */
export function casTxn(keyField: Buffer, rev: number, successOp: Buffer, failureOp: Buffer): Buffer {
  // Compare{result: EQUAL (0, omitted), target: MOD (2), key, mod_revision: rev}
  const compare = Buffer.concat([uintField(2, 2), keyField, varint(6 << 3), varint(rev)]);
  return Buffer.concat([bytesField(1, compare, true), successOp, failureOp]);
}

export function leaseGrantRequest(ttl: number): Buffer {
  return uintField(1, ttl);
}

export function leaseIdRequest(id: bigint): Buffer {
  return uintField(1, id);
}

export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

// ---- response scanning ----

/** Walks the fields of one message between `start` and `end`. */
export class PbReader {
  pos: number;
  field = 0;
  wire = 0;

  constructor(readonly buf: Buffer, start = 0, readonly end = buf.length) {
    this.pos = start;
  }

  next(): boolean {
    if (this.pos >= this.end) return false;
    const tag = this.varint();
    this.field = tag >>> 3;
    this.wire = tag & 7;
    return true;
  }

  /** Varints up to 2^53 exactly (revisions, counts, TTLs). */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (;;) {
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
  }

  varintBig(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asIntN(64, result);
      shift += 7n;
    }
  }

  /** A length-delimited field's [start, end). */
  span(): [number, number] {
    const len = this.varint();
    const s = this.pos;
    this.pos += len;
    return [s, this.pos];
  }

  skip(): void {
    switch (this.wire) {
      case 0: this.varint(); break;
      case 1: this.pos += 8; break;
      case 2: this.span(); break;
      case 5: this.pos += 4; break;
      default: throw new Error(`protobuf: unsupported wire type ${this.wire}`);
    }
  }
}

function headerRevision(buf: Buffer, s: number, e: number): number {
  const r = new PbReader(buf, s, e);
  while (r.next()) {
    if (r.field === 3 && r.wire === WIRE_VARINT) return r.varint();
    r.skip();
  }
  return 0;
}

export interface RangeSummary {
  revision: number;
  count: number;
  more: boolean;
  kvs: number;
  /** Key of the last kv (for pagination). */
  lastKey: Buffer | undefined;
  /** mod_revision of the first kv. */
  firstModRevision: number;
}

function kvField(buf: Buffer, s: number, e: number, field: number): [number, number] | number | undefined {
  const r = new PbReader(buf, s, e);
  while (r.next()) {
    if (r.field === field) return r.wire === WIRE_LEN ? r.span() : r.varint();
    r.skip();
  }
  return undefined;
}

export function scanRange(buf: Buffer, start = 0, end = buf.length): RangeSummary {
  const out: RangeSummary = { revision: 0, count: 0, more: false, kvs: 0, lastKey: undefined, firstModRevision: 0 };
  const r = new PbReader(buf, start, end);
  let last: [number, number] | undefined;
  while (r.next()) {
    switch (r.field) {
      case 1: { const [s, e] = r.span(); out.revision = headerRevision(buf, s, e); break; }
      case 2: {
        const span = r.span();
        if (out.kvs === 0) {
          const m = kvField(buf, span[0], span[1], 3);
          out.firstModRevision = typeof m === 'number' ? m : 0;
        }
        out.kvs++;
        last = span;
        break;
      }
      case 3: out.more = r.varint() !== 0; break;
      case 4: out.count = r.varint(); break;
      default: r.skip();
    }
  }
  if (last) {
    const k = kvField(buf, last[0], last[1], 1);
    out.lastKey = Array.isArray(k) ? Buffer.from(buf.subarray(k[0], k[1])) : Buffer.alloc(0);
  }
  return out;
}

/** Header revision of any response whose field 1 is the ResponseHeader. */
export function scanHeaderRevision(buf: Buffer): number {
  const r = new PbReader(buf);
  while (r.next()) {
    if (r.field === 1 && r.wire === WIRE_LEN) {
      const [s, e] = r.span();
      return headerRevision(buf, s, e);
    }
    r.skip();
  }
  return 0;
}

export interface TxnSummary {
  revision: number;
  succeeded: boolean;
  /** The first response_range among the responses, if any. */
  range: RangeSummary | undefined;
}

export function scanTxn(buf: Buffer): TxnSummary {
  const out: TxnSummary = { revision: 0, succeeded: false, range: undefined };
  const r = new PbReader(buf);
  while (r.next()) {
    if (r.field === 1 && r.wire === WIRE_LEN) {
      const [s, e] = r.span();
      out.revision = headerRevision(buf, s, e);
    } else if (r.field === 2 && r.wire === WIRE_VARINT) {
      out.succeeded = r.varint() !== 0;
    } else if (r.field === 3 && r.wire === WIRE_LEN) {
      const [s, e] = r.span();
      if (out.range) continue;
      const op = new PbReader(buf, s, e);
      while (op.next()) {
        if (op.field === 1 && op.wire === WIRE_LEN) {
          const [rs, re] = op.span();
          out.range = scanRange(buf, rs, re);
        } else {
          op.skip();
        }
      }
    } else {
      r.skip();
    }
  }
  return out;
}

/** LeaseGrantResponse / LeaseKeepAliveResponse: ID (2) and TTL (3). */
export function scanLease(buf: Buffer): { id: bigint; ttl: number; error: string } {
  const out = { id: 0n, ttl: 0, error: '' };
  const r = new PbReader(buf);
  while (r.next()) {
    if (r.field === 2 && r.wire === WIRE_VARINT) out.id = r.varintBig();
    else if (r.field === 3 && r.wire === WIRE_VARINT) out.ttl = Number(r.varintBig());
    else if (r.field === 4 && r.wire === WIRE_LEN) { const [s, e] = r.span(); out.error = buf.toString('utf8', s, e); }
    else r.skip();
  }
  return out;
}
