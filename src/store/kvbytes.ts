import type { KeyValue } from './types.ts';

const EMPTY = Buffer.alloc(0);

/**
 * A key-value in etcd's own encoding, mvccpb.KeyValue (proto/mvccpb/kv.proto: key=1,
 * create_revision=2, mod_revision=3, version=4, value=5, lease=6; proto3, zero values omitted):
 * the form etcd keeps key-values in its backend, and the form the head cache keeps each live key
 * in, so that a list is answered by copying one buffer per key into the response. Also the
 * small protobuf writing helpers the hand-written response encoders share.
 */

/** Bytes of a varint; a negative int64 takes ten. */
export function varintSize(n: number): number {
  if (n < 0) return 10;
  let s = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}

/** Writes protobuf into a buffer sized beforehand. */
export class Out {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  varint(n: number): void {
    while (n >= 128) {
      this.buf[this.pos++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

const TWO_64 = 1n << 64n;

/** An int64/uint64 given as a decimal string, as the bytes of its varint (two's complement). */
export function varint64(s: string): Buffer {
  let v = BigInt(s);
  if (v < 0n) v += TWO_64;
  const out: number[] = [];
  while (v >= 128n) {
    out.push(Number(v & 127n) | 128);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

/** A small int64 string as a number, or undefined when it needs the exact (BigInt) path. */
function smallInt(s: string): number | undefined {
  if (s.length > 15 || s.startsWith('-')) return undefined;
  return Number(s);
}

/** A lease ID's varint bytes; undefined for no lease. */
export function leaseBytes(lease: string): Buffer | undefined {
  if (lease === '0' || lease === '') return undefined;
  const small = smallInt(lease);
  if (small === undefined) return varint64(lease);
  const o = new Out(Buffer.allocUnsafe(varintSize(small)));
  o.varint(small);
  return o.buf;
}

/** Encoded length of a KeyValue whose lease bytes are `lease`. */
export function kvLen(kv: KeyValue, lease: Buffer | undefined): number {
  let n = 0;
  if (kv.key.length > 0) n += 1 + varintSize(kv.key.length) + kv.key.length;
  if (kv.create_revision !== 0) n += 1 + varintSize(kv.create_revision);
  if (kv.mod_revision !== 0) n += 1 + varintSize(kv.mod_revision);
  if (kv.version !== 0) n += 1 + varintSize(kv.version);
  if (kv.value.length > 0) n += 1 + varintSize(kv.value.length) + kv.value.length;
  if (lease) n += 1 + lease.length;
  return n;
}

export function writeKv(o: Out, kv: KeyValue, lease: Buffer | undefined): void {
  if (kv.key.length > 0) { o.byte(0x0a); o.varint(kv.key.length); o.bytes(kv.key); }
  if (kv.create_revision !== 0) { o.byte(0x10); o.varint(kv.create_revision); }
  if (kv.mod_revision !== 0) { o.byte(0x18); o.varint(kv.mod_revision); }
  if (kv.version !== 0) { o.byte(0x20); o.varint(kv.version); }
  if (kv.value.length > 0) { o.byte(0x2a); o.varint(kv.value.length); o.bytes(kv.value); }
  if (lease) { o.byte(0x30); o.bytes(lease); }
}

/** The KeyValue as mvccpb.KeyValue bytes, in a buffer of its own (not a slice of a pool). */
export function encodeKeyValue(kv: KeyValue): Buffer {
  const lease = leaseBytes(kv.lease);
  const o = new Out(Buffer.allocUnsafeSlow(kvLen(kv, lease)));
  writeKv(o, kv, lease);
  return o.buf;
}

/** Reads a varint at `at`; returns [value, next offset]. Revisions and lengths stay below 2^53. */
function readVarint(b: Uint8Array, at: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    const byte = b[at++]!;
    v += (byte & 127) * mul;
    if (byte < 128) return [v, at];
    mul *= 128;
  }
}

/** A lease varint (int64, two's complement) as a decimal string. */
function readLease(b: Uint8Array, at: number): [string, number] {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    const byte = b[at++]!;
    v |= BigInt(byte & 127) << shift;
    if (byte < 128) break;
    shift += 7n;
  }
  return [BigInt.asIntN(64, v).toString(), at];
}

/** The KeyValue in `b` (as encodeKeyValue writes it); key and value are views into `b`. */
export function decodeKeyValue(b: Buffer): KeyValue {
  const kv: KeyValue = { key: EMPTY, value: EMPTY, create_revision: 0, mod_revision: 0, version: 0, lease: '0' };
  let at = 0;
  while (at < b.length) {
    const tag = b[at++]!;
    let n: number;
    switch (tag) {
      case 0x0a: [n, at] = readVarint(b, at); kv.key = b.subarray(at, at + n); at += n; break;
      case 0x10: [kv.create_revision, at] = readVarint(b, at); break;
      case 0x18: [kv.mod_revision, at] = readVarint(b, at); break;
      case 0x20: [kv.version, at] = readVarint(b, at); break;
      case 0x2a: [n, at] = readVarint(b, at); kv.value = b.subarray(at, at + n); at += n; break;
      case 0x30: [kv.lease, at] = readLease(b, at); break;
      default: throw new Error(`not a KeyValue encoding (tag ${tag} at ${at - 1})`);
    }
  }
  return kv;
}

/** The same KeyValue without its value (a keys_only answer). */
export function withoutValue(b: Buffer): Buffer {
  const kv = decodeKeyValue(b);
  if (kv.value.length === 0) return b;
  return encodeKeyValue({ ...kv, value: EMPTY });
}

