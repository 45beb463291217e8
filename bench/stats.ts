/** Latency samples in microseconds; every sample is kept (8 bytes each) and sorted once. */
export class Recorder {
  private buf = new Float64Array(1 << 14);
  private n = 0;

  get count(): number {
    return this.n;
  }

  add(us: number): void {
    if (this.n === this.buf.length) {
      const bigger = new Float64Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.n++] = us;
  }

  summary(): LatencySummary | undefined {
    if (this.n === 0) return undefined;
    const s = this.buf.slice(0, this.n).sort();
    let sum = 0;
    for (let i = 0; i < s.length; i++) sum += s[i]!;
    const q = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
    return { count: s.length, meanUs: sum / s.length, p50Us: q(0.5), p90Us: q(0.9), p99Us: q(0.99), maxUs: s[s.length - 1]! };
  }
}

export interface LatencySummary {
  count: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
