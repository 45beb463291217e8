import fs from 'node:fs';

/** CPU and memory of processes, from /proc (Linux). Clock ticks are 100 per second. */
const HZ = 100;

interface Stat { pid: number; ppid: number; cpu: number; childCpu: number }

function readStat(pid: number): Stat | undefined {
  let s: string;
  try {
    s = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces) start at field 3 (state).
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const n = (i: number): number => Number(f[i - 3]);
  return { pid, ppid: n(4), cpu: (n(14) + n(15)) / HZ, childCpu: (n(16) + n(17)) / HZ };
}

function allPids(): number[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
}

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** `roots` and all their live descendants. */
export function withDescendants(roots: number[], exclude: number[] = []): number[] {
  const children = new Map<number, number[]>();
  for (const pid of allPids()) {
    const st = readStat(pid);
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(pid);
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const todo = [...roots];
  while (todo.length) {
    const p = todo.pop()!;
    if (out.includes(p) || exclude.includes(p)) continue;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** Processes whose command line mentions `text` (e.g. the postmaster's -D <data dir>). */
export function pidsWithCmdline(text: string): number[] {
  return allPids().filter((p) => p !== process.pid && cmdline(p).includes(text));
}

/**
 * CPU seconds (user+system) used so far by a process tree: each live process's own time plus
 * what its exited children left in its cutime/cstime, so backends that come and go between two
 * readings are still counted.
 */
export function treeCpuSeconds(roots: number[], exclude: number[] = []): number {
  let sum = 0;
  for (const pid of withDescendants(roots, exclude)) {
    const st = readStat(pid);
    if (st) sum += st.cpu + st.childCpu;
  }
  return sum;
}

function statusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Resident and peak resident memory of one process, MiB. */
export function rssMiB(pid: number): { rss: number; peak: number } {
  return { rss: statusKb(pid, 'VmRSS') / 1024, peak: statusKb(pid, 'VmHWM') / 1024 };
}

/** Proportional set size of a process tree, MiB: shared memory (shared_buffers) counted once. */
export function treePssMiB(roots: number[]): number {
  let kb = 0;
  for (const pid of withDescendants(roots)) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
      if (m) kb += Number(m[1]);
    } catch {
      // exited meanwhile
    }
  }
  return kb / 1024;
}

export interface IoReading {
  /** Bytes passed to write()/send() and read()/recv() (sockets, pipes and files alike). */
  wchar: number;
  rchar: number;
  /** Number of write and read system calls. */
  syscw: number;
  syscr: number;
}

/** Summed /proc/<pid>/io of some processes (their own, not their children's). */
export function ioOf(pids: number[]): IoReading {
  const out: IoReading = { wchar: 0, rchar: 0, syscw: 0, syscr: 0 };
  for (const pid of pids) {
    try {
      const t = fs.readFileSync(`/proc/${pid}/io`, 'latin1');
      for (const k of ['wchar', 'rchar', 'syscw', 'syscr'] as const) {
        const m = new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t);
        if (m) out[k] += Number(m[1]);
      }
    } catch {
      // exited, or not readable
    }
  }
  return out;
}
