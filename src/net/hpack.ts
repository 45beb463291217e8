/**
 * Just enough HPACK (RFC 7541) to read a client's request headers and write them again: a
 * decoder that keeps the client's dynamic table, and an encoder that writes literals only (no
 * indexing, no Huffman), so whoever reads its output needs no table state at all. Used by
 * h2gate.ts, which must see and fix `:authority` before nghttp2 does.
 */

export type HeaderList = Array<[name: string, value: string]>;

export class HpackError extends Error {}

/** RFC 7541 Appendix A. Index 1 is the first entry. */
const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'],
  [':path', '/index.html'], [':scheme', 'http'], [':scheme', 'https'], [':status', '200'],
  [':status', '204'], [':status', '206'], [':status', '304'], [':status', '400'],
  [':status', '404'], [':status', '500'], ['accept-charset', ''], ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''], ['accept-ranges', ''], ['accept', ''], ['access-control-allow-origin', ''],
  ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''],
  ['date', ''], ['etag', ''], ['expect', ''], ['expires', ''],
  ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''],
  ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''],
  ['retry-after', ''], ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''],
  ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/**
 * Code lengths of the HPACK Huffman code (RFC 7541 Appendix B) for symbols 0..255 and EOS (256).
 * The code is canonical: codes follow from the lengths alone (shorter first, then by symbol).
 */
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const EOS = 256;
const MAX_CODE_LENGTH = 30;

/** Canonical decoding tables: per length, the first code, how many codes, and where they start. */
const huffman = (() => {
  const count = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  for (const l of HUFFMAN_LENGTHS) count[l]!++;
  const symbols = HUFFMAN_LENGTHS.map((l, s) => [l, s] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([, s]) => s);
  const first = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  const offset = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  let code = 0;
  let index = 0;
  for (let l = 1; l <= MAX_CODE_LENGTH; l++) {
    first[l] = code;
    offset[l] = index;
    code = (code + count[l]!) * 2;
    index += count[l]!;
  }
  return { count, first, offset, symbols };
})();

export function huffmanDecode(src: Buffer): Buffer {
  const out: number[] = [];
  let code = 0;
  let len = 0;
  for (const byte of src) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const i = code - huffman.first[len]!;
      if (i < huffman.count[len]!) {
        const sym = huffman.symbols[huffman.offset[len]! + i]!;
        if (sym === EOS) throw new HpackError('Huffman string contains EOS');
        out.push(sym);
        code = 0;
        len = 0;
      } else if (len >= MAX_CODE_LENGTH) {
        throw new HpackError('invalid Huffman code');
      }
    }
  }
  // Padding: fewer than 8 bits, all ones (a prefix of EOS).
  if (len > 7 || code !== 2 ** len - 1) throw new HpackError('invalid Huffman padding');
  return Buffer.from(out);
}

/** An integer with an N-bit prefix (RFC 7541 §5.1); returns [value, next offset]. */
function readInt(buf: Buffer, pos: number, prefixBits: number): [number, number] {
  if (pos >= buf.length) throw new HpackError('truncated integer');
  const max = (1 << prefixBits) - 1;
  let v = buf[pos]! & max;
  pos++;
  if (v < max) return [v, pos];
  let m = 1;
  for (;;) {
    if (pos >= buf.length) throw new HpackError('truncated integer');
    const b = buf[pos++]!;
    v += (b & 0x7f) * m;
    m *= 128;
    if (v > 0xffffff) throw new HpackError('integer too large');
    if ((b & 0x80) === 0) return [v, pos];
  }
}

function readString(buf: Buffer, pos: number): [string, number] {
  if (pos >= buf.length) throw new HpackError('truncated string');
  const huff = (buf[pos]! & 0x80) !== 0;
  const [len, start] = readInt(buf, pos, 7);
  const end = start + len;
  if (end > buf.length) throw new HpackError('truncated string');
  const raw = buf.subarray(start, end);
  return [(huff ? huffmanDecode(raw) : raw).toString('latin1'), end];
}

/** Entry overhead counted by the table size (RFC 7541 §4.1). */
const ENTRY_OVERHEAD = 32;

/** One direction's decoder: the dynamic table the peer's encoder builds, block after block. */
export class HpackDecoder {
  /** Newest first. */
  private readonly table: Array<readonly [string, string]> = [];
  private size = 0;
  private maxSize: number;

  /** `limit` is the SETTINGS_HEADER_TABLE_SIZE the peer may use (4096 unless we say otherwise). */
  constructor(private readonly limit = 4096) {
    this.maxSize = limit;
  }

  decode(block: Buffer): HeaderList {
    const out: HeaderList = [];
    let pos = 0;
    while (pos < block.length) {
      const b = block[pos]!;
      if (b & 0x80) {
        const [index, next] = readInt(block, pos, 7);
        out.push([...this.entry(index)]);
        pos = next;
      } else if ((b & 0xe0) === 0x20) {
        const [size, next] = readInt(block, pos, 5);
        if (size > this.limit) throw new HpackError('table size update above the limit');
        this.maxSize = size;
        this.evict(0);
        pos = next;
      } else {
        // Literal: with incremental indexing (01xxxxxx, 6-bit index), or without / never indexed
        // (0000xxxx / 0001xxxx, 4-bit index). Index 0 means the name follows as a string.
        const indexing = (b & 0xc0) === 0x40;
        const [index, afterIndex] = readInt(block, pos, indexing ? 6 : 4);
        let name: string;
        pos = afterIndex;
        if (index === 0) [name, pos] = readString(block, pos);
        else name = this.entry(index)[0];
        let value: string;
        [value, pos] = readString(block, pos);
        out.push([name, value]);
        if (indexing) this.add(name, value);
      }
    }
    return out;
  }

  private entry(index: number): readonly [string, string] {
    if (index >= 1 && index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const e = this.table[index - STATIC_TABLE.length - 1];
    if (!e) throw new HpackError(`index ${index} is not in the table`);
    return e;
  }

  private add(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    this.evict(size);
    // An entry larger than the whole table empties it and is not added (RFC 7541 §4.4).
    if (size > this.maxSize) return;
    this.table.unshift([name, value]);
    this.size += size;
  }

  private evict(room: number): void {
    while (this.size + room > this.maxSize && this.table.length > 0) {
      const [n, v] = this.table.pop()!;
      this.size -= n.length + v.length + ENTRY_OVERHEAD;
    }
  }
}

function writeInt(out: number[], v: number, prefixBits: number, firstByte: number): void {
  const max = (1 << prefixBits) - 1;
  if (v < max) { out.push(firstByte | v); return; }
  out.push(firstByte | max);
  v -= max;
  while (v >= 128) { out.push((v % 128) | 0x80); v = Math.floor(v / 128); }
  out.push(v);
}

/** Literal header fields without indexing, new names, raw strings: needs no table on either side. */
export function encodeLiterals(headers: HeaderList): Buffer {
  const out: number[] = [];
  for (const [name, value] of headers) {
    out.push(0x00);
    for (const s of [name, value]) {
      const bytes = Buffer.from(s, 'latin1');
      writeInt(out, bytes.length, 7, 0);
      for (const x of bytes) out.push(x);
    }
  }
  return Buffer.from(out);
}
