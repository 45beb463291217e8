/**
 * A linearizability checker for histories of Get / Put / compare-and-swap on independent keys
 * (registers), in the manner of Wing & Gong with Lowe's memoisation (as Jepsen's Knossos and
 * Porcupine do it): find an order of the operations that respects real time (an operation that
 * returned before another was called comes first) and in which every read returns the value of
 * the last write. Linearizability is local, so each key is checked on its own.
 *
 * Operations whose outcome the client does not know (an error or a timeout on a write) may have
 * taken effect at any moment after they were called, or never: they get no return time (they
 * may be placed after everything) and any outcome. Reads that failed are left out.
 */

export type OpKind = 'get' | 'put' | 'cas';

export interface Op {
  key: string;
  kind: OpKind;
  /** put: the value written; cas: the new value. */
  value?: string;
  /** cas: the value compared against (undefined = the key must be absent). */
  expect?: string | undefined;
  /** get: the value read (undefined = absent); cas: whether it succeeded. */
  output?: string | undefined | boolean;
  /** The outcome is unknown (the request failed or timed out). */
  unknown?: boolean;
  call: number;
  /** Infinity for unknown outcomes. */
  ret: number;
}

/** Records operations with a monotonic clock. */
export class History {
  readonly ops: Op[] = [];
  private readonly t0 = process.hrtime.bigint();

  now(): number {
    return Number(process.hrtime.bigint() - this.t0) / 1e3;
  }

  /** Runs `f` as one operation; `f` returns its output. A throw marks the outcome unknown. */
  async record<T extends Op['output']>(op: Omit<Op, 'call' | 'ret' | 'output' | 'unknown'>, f: () => Promise<T>): Promise<void> {
    const call = this.now();
    try {
      const output = await f();
      this.ops.push({ ...op, output, call, ret: this.now() });
    } catch {
      if (op.kind !== 'get') this.ops.push({ ...op, unknown: true, call, ret: Infinity });
    }
  }
}

export interface CheckResult {
  ok: boolean;
  /** Per key: operations checked and whether a linearization was found. */
  keys: Array<{ key: string; ops: number; ok: boolean }>;
  /** For a failing key: the operations around the first one no linearization could place. */
  explanation?: string;
}

const ABSENT = '\u0000absent';

interface Entry {
  op: Op | undefined;
  id: number;
  isCall: boolean;
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

/** Checks every key's sub-history; stops at the first key that is not linearizable. */
export function checkLinearizable(ops: readonly Op[]): CheckResult {
  const byKey = new Map<string, Op[]>();
  for (const op of ops) {
    let l = byKey.get(op.key);
    if (!l) byKey.set(op.key, (l = []));
    l.push(op);
  }
  const keys: CheckResult['keys'] = [];
  for (const [key, list] of byKey) {
    const r = checkRegister(list);
    keys.push({ key, ops: list.length, ok: r.ok });
    if (!r.ok) return { ok: false, keys, explanation: `key ${key}: ${r.explanation}` };
  }
  return { ok: true, keys };
}

/** One register's history, starting absent. */
function checkRegister(ops: readonly Op[]): { ok: boolean; explanation?: string } {
  // Call and return events in time order; a return at the same instant as a call goes first
  // (the operations did not overlap).
  type Ev = { t: number; isCall: boolean; id: number };
  const evs: Ev[] = [];
  ops.forEach((op, id) => {
    evs.push({ t: op.call, isCall: true, id });
    evs.push({ t: op.ret, isCall: false, id });
  });
  evs.sort((a, b) => (a.t === b.t ? (a.isCall === b.isCall ? 0 : a.isCall ? 1 : -1) : a.t < b.t ? -1 : 1));
  const head: Entry = { op: undefined, id: -1, isCall: false, match: undefined, prev: undefined, next: undefined };
  let tail = head;
  const calls = new Array<Entry>(ops.length);
  const rets = new Array<Entry>(ops.length);
  for (const ev of evs) {
    const e: Entry = { op: ops[ev.id], id: ev.id, isCall: ev.isCall, match: undefined, prev: tail, next: undefined };
    tail.next = e;
    tail = e;
    if (ev.isCall) calls[ev.id] = e;
    else rets[ev.id] = e;
  }
  for (let i = 0; i < ops.length; i++) calls[i]!.match = rets[i];

  // Zobrist hashes of the set of linearized operations, two 32-bit halves.
  const z1 = new Uint32Array(ops.length);
  const z2 = new Uint32Array(ops.length);
  let seed = 0x9e3779b9;
  const rnd = (): number => {
    seed ^= seed << 13; seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5; seed >>>= 0;
    return seed;
  };
  for (let i = 0; i < ops.length; i++) {
    z1[i] = rnd();
    z2[i] = rnd();
  }
  let h1 = 0;
  let h2 = 0;
  const seen = new Set<string>();
  const stack: Array<{ entry: Entry; state: string }> = [];
  let state = ABSENT;
  let entry = head.next;
  let deepest = 0;
  let deepestOp: Op | undefined;

  const lift = (e: Entry): void => {
    e.prev!.next = e.next;
    if (e.next) e.next.prev = e.prev;
    const m = e.match!;
    m.prev!.next = m.next;
    if (m.next) m.next.prev = m.prev;
  };
  const unlift = (e: Entry): void => {
    const m = e.match!;
    m.prev!.next = m;
    if (m.next) m.next.prev = m;
    e.prev!.next = e;
    if (e.next) e.next.prev = e;
  };

  while (head.next) {
    if (!entry) return { ok: false, explanation: 'internal: ran off the list' };
    if (entry.isCall) {
      const op = entry.op!;
      const next = step(state, op);
      if (next !== undefined) {
        const n1 = (h1 ^ z1[entry.id]!) >>> 0;
        const n2 = (h2 ^ z2[entry.id]!) >>> 0;
        const k = `${n1}:${n2}:${next}`;
        if (!seen.has(k)) {
          seen.add(k);
          stack.push({ entry, state });
          state = next;
          h1 = n1;
          h2 = n2;
          lift(entry);
          if (stack.length > deepest) {
            deepest = stack.length;
            deepestOp = undefined;
          }
          entry = head.next;
          continue;
        }
      }
      entry = entry.next;
    } else {
      // A return whose call is not linearized yet: undo the last choice.
      if (stack.length === 0) return { ok: false, explanation: explain(ops, deepestOp ?? entry.op) };
      if (!deepestOp) deepestOp = entry.op;
      const top = stack.pop()!;
      state = top.state;
      h1 = (h1 ^ z1[top.entry.id]!) >>> 0;
      h2 = (h2 ^ z2[top.entry.id]!) >>> 0;
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return { ok: true };
}

/** The register's state after `op`, or undefined when `op` cannot happen in `state`. */
function step(state: string, op: Op): string | undefined {
  switch (op.kind) {
    case 'get': {
      const read = op.output === undefined ? ABSENT : String(op.output);
      return read === state ? state : undefined;
    }
    case 'put':
      return op.value!;
    case 'cas': {
      const expect = op.expect === undefined ? ABSENT : op.expect;
      const matches = state === expect;
      if (op.unknown) return matches ? op.value! : state;
      if (op.output === true) return matches ? op.value! : undefined;
      return matches ? undefined : state;
    }
  }
}

function fmt(op: Op): string {
  const t = (n: number): string => (Number.isFinite(n) ? (n / 1000).toFixed(3) : '∞');
  const what = op.kind === 'get' ? `get -> ${op.output ?? '(absent)'}`
    : op.kind === 'put' ? `put ${op.value}`
    : `cas ${op.expect ?? '(absent)'} -> ${op.value}: ${op.unknown ? 'unknown' : op.output ? 'ok' : 'failed'}`;
  return `[${t(op.call)}ms, ${t(op.ret)}ms] ${what}`;
}

/** The operations overlapping the one no linearization could get past. */
function explain(ops: readonly Op[], at: Op | undefined): string {
  if (!at) return 'no linearization';
  const near = ops.filter((o) => o.call <= at.ret && o.ret >= at.call - 20_000).sort((a, b) => a.call - b.call).slice(0, 30);
  return `no linearization gets past ${fmt(at)}; operations around it:\n${near.map((o) => `  ${fmt(o)}`).join('\n')}`;
}
