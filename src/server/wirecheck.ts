/**
 * A structural check of a request's top-level protobuf fields before protobufjs decodes it.
 * protobufjs accepts some bytes that Go's protobuf, and so etcd, rejects: field number 0, group
 * wire types, varints longer than ten bytes in unknown fields. etcd answers those with INTERNAL
 * ("error unmarshalling request"); throwing here makes grpc-js answer INTERNAL as well, instead
 * of running a request decoded from garbage (an empty Txn, a Compact to revision 0).
 */
export function checkWireFormat(buf: Uint8Array): void {
  let i = 0;
  const varint = (): number => {
    let value = 0;
    for (let n = 0; n < 10; n++) {
      if (i >= buf.length) throw new Error('unexpected EOF');
      const b = buf[i++]!;
      if (n === 9 && b > 1) throw new Error('integer overflow');
      if (n < 8) value += (b & 0x7f) * 2 ** (7 * n);
      if (b < 0x80) return value;
    }
    throw new Error('integer overflow');
  };
  while (i < buf.length) {
    const tag = varint();
    const wireType = tag % 8;
    if (tag < 8) throw new Error(`illegal tag 0 (wire type ${wireType})`);
    switch (wireType) {
      case 0: varint(); break;
      case 1: i += 8; break;
      case 2: { const len = varint(); i += len; break; }
      case 5: i += 4; break;
      default: throw new Error(`wrong wireType = ${wireType}`);
    }
    if (i > buf.length) throw new Error('unexpected EOF');
  }
}
