/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by area (npm
 * package, pgetcd source folder, node internals, GC), as shares of the non-idle time.
 *
 *   node --import tsx bench/profile-summary.ts /tmp/prof/CPU.*.cpuprofile [--top 30]
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

function area(cf: CallFrame): string {
  const u = cf.url;
  if (!u) return cf.functionName.startsWith('(') ? cf.functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return nm[1]!;
  const src = /\/(src|bench|bin)\/(.*)$/.exec(u);
  if (src) {
    const parts = src[2]!.split('/');
    return `${src[1]}/${parts.length > 1 ? parts[0] + '/' : ''}${parts[parts.length - 1]}`;
  }
  const internal = /^node:(?:internal\/)?([^/]+)/.exec(u);
  if (internal) return `node:${internal[1]}`;
  return u.replace(/^file:\/\//, '');
}

function where(cf: CallFrame): string {
  const u = cf.url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '').replace(/^.*\/(src|bench|bin)\//, '$1/');
  return u ? `${u}:${cf.lineNumber + 1}` : '';
}

export function summarize(file: string, top = 30): string {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const fn = new Map<string, number>();
  /** Per function: self time by the JS call path above it (first frames with a URL). */
  const via = new Map<string, Map<string, number>>();
  const ar = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') { idle += us; continue; }
    busy += us;
    const name = `${cf.functionName || '(anonymous)'}  ${where(cf)}`;
    fn.set(name, (fn.get(name) ?? 0) + us);
    const path: string[] = [];
    for (let q = parent.get(id); q !== undefined && path.length < 3; q = parent.get(q)) {
      const pf = byId.get(q)!.callFrame;
      if (pf.url || path.length > 0) path.push(`${pf.functionName || '(anonymous)'} ${where(pf)}`);
    }
    // The first caller outside node's internals: whose code asked for this.
    for (let q = parent.get(id); q !== undefined; q = parent.get(q)) {
      const pf = byId.get(q)!.callFrame;
      if (pf.url && !pf.url.startsWith('node:')) {
        if (!path.includes(`${pf.functionName || '(anonymous)'} ${where(pf)}`)) path.push(`... ${pf.functionName || '(anonymous)'} ${where(pf)}`);
        break;
      }
    }
    const m = via.get(name) ?? new Map<string, number>();
    const key = path.join(' < ') || '(root)';
    m.set(key, (m.get(key) ?? 0) + us);
    via.set(name, m);
    const a = area(cf);
    ar.set(a, (ar.get(a) ?? 0) + us);
  }
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
  const ms = (us: number): string => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  const lines = [
    `${file}`,
    `wall ${((p.endTime - p.startTime) / 1e6).toFixed(1)} s, busy (non-idle) ${(busy / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s`,
    '',
    'self time by area:',
    ...[...ar].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, v]) => `${ms(v)} ${pct(v)}  ${k}`),
    '',
    `top ${top} functions by self time:`,
    ...[...fn].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `${ms(v)} ${pct(v)}  ${k}`),
    '',
    'callers of the top 8 (self time by the three frames above, then the first caller outside node internals):',
    ...[...fn].sort((a, b) => b[1] - a[1]).slice(0, 8).flatMap(([k]) => [
      `  ${k}`,
      ...[...via.get(k)!].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([c, v]) => `    ${ms(v)}  < ${c}`),
    ]),
  ];
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const ti = args.indexOf('--top');
  const top = ti >= 0 ? Number(args.splice(ti, 2)[1]) : 30;
  if (args.length === 0) {
    process.stderr.write('usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  for (const f of args) process.stdout.write(summarize(f, top) + '\n\n');
}
