/**
 * Array types for postgres.js pools without its per-connection type query.
 *
 * By default (fetch_types: true) postgres.js runs a pg_type query as the first statement of
 * every new connection to learn the array type of each type, and drops the promise of that query
 * (postgres 3.4.9, src/connection.js ReadyForQuery -> fetchArrayTypes; porsager/postgres#1192,
 * #1205, #1223). When the backend is terminated or PostgreSQL restarts while a freshly
 * (re)connected connection runs it, which is exactly what happens during a failover as the pools
 * reconnect, the rejection reaches nobody: an unhandledRejection that kills the process.
 *
 * pgetcd's pools therefore run with fetch_types: false and get the array types of PostgreSQL's
 * built-in types here instead. Their OIDs are fixed in PostgreSQL's catalog (pg_type.dat) and
 * have never changed, so nothing has to be asked of the server.
 */

/** Element type OID -> array type OID, for the built-in types pgetcd binds or reads. */
export const BUILTIN_ARRAY_TYPES: ReadonlyMap<number, number> = new Map([
  [16, 1000], // bool
  [17, 1001], // bytea
  [19, 1003], // name
  [20, 1016], // int8
  [21, 1005], // int2
  [23, 1007], // int4
  [25, 1009], // text
  [26, 1028], // oid
  [114, 199], // json
  [700, 1021], // float4
  [701, 1022], // float8
  [1042, 1014], // bpchar
  [1043, 1015], // varchar
  [1082, 1182], // date
  [1114, 1115], // timestamp
  [1184, 1185], // timestamptz
  [1700, 1231], // numeric
  [2950, 2951], // uuid
  [3802, 3807], // jsonb
]);

type Convert = (x: any) => unknown;

/** The parts of a postgres.js instance's options that array support lives in. */
interface TypeTables {
  serializers: Record<number, Convert>;
  parsers: Record<number, Convert>;
  /** Not in postgres.js's typings: what `sql.array(values, elementOid)` maps to an array OID. */
  shared?: { typeArrayMap?: Record<number, number> };
}

/**
 * Registers BUILTIN_ARRAY_TYPES on a postgres.js instance created with fetch_types: false: the
 * same tables the type query would have filled, with the instance's own element serializers and
 * parsers (so int8 elements stay JS numbers, as int8 columns do).
 */
export function installArrayTypes(options: object): void {
  const o = options as TypeTables;
  const map = o.shared?.typeArrayMap;
  if (!map || typeof map !== 'object') throw new Error('postgres.js has no shared.typeArrayMap: array parameters cannot be typed');
  for (const [elem, arr] of BUILTIN_ARRAY_TYPES) {
    map[elem] = arr;
    const serialize = o.serializers[elem];
    const parse = o.parsers[elem];
    o.serializers[arr] = (xs: unknown) => arrayLiteral(xs, serialize);
    o.parsers[arr] = (text: string) => parseArrayLiteral(text, parse);
  }
}

/** PostgreSQL's text form of an array: every element quoted, NULL bare, nested arrays in braces. */
export function arrayLiteral(xs: unknown, serialize?: Convert): string {
  if (!Array.isArray(xs)) throw new TypeError(`an array parameter needs an array, got ${typeof xs}`);
  const parts = xs.map((x) => {
    if (x === null || x === undefined) return 'NULL';
    if (Array.isArray(x)) return arrayLiteral(x, serialize);
    const s = String(serialize ? serialize(x) : x);
    return `"${s.replace(/[\\"]/g, '\\$&')}"`;
  });
  return `{${parts.join(',')}}`;
}

/** Parses PostgreSQL's text form of an array (any dimensions, optional explicit bounds). */
export function parseArrayLiteral(text: string, parse?: Convert): unknown[] {
  let i = text.startsWith('[') ? text.indexOf('=') + 1 : 0;
  const element = (s: string): unknown => (parse ? parse(s) : s);

  const list = (): unknown[] => {
    if (text[i] !== '{') throw new Error(`malformed array literal: ${text}`);
    i++;
    const out: unknown[] = [];
    if (text[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      if (text[i] === '{') {
        out.push(list());
      } else if (text[i] === '"') {
        i++;
        let s = '';
        for (;;) {
          const q = text.indexOf('"', i);
          const b = text.indexOf('\\', i);
          if (q < 0) throw new Error(`malformed array literal: ${text}`);
          if (b >= 0 && b < q) {
            s += text.slice(i, b) + text.charAt(b + 1);
            i = b + 2;
          } else {
            s += text.slice(i, q);
            i = q + 1;
            break;
          }
        }
        out.push(element(s));
      } else {
        let j = i;
        while (j < text.length && text[j] !== ',' && text[j] !== '}') j++;
        const s = text.slice(i, j).trim();
        i = j;
        out.push(s.toUpperCase() === 'NULL' ? null : element(s));
      }
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] !== '}') throw new Error(`malformed array literal: ${text}`);
      i++;
      return out;
    }
  };
  return list();
}
