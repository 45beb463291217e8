/** Typed access to the parsed command-line options. */
export class Opts {
  constructor(private readonly v: Record<string, string | boolean | undefined>) {}

  has(name: string): boolean {
    return this.v[name] !== undefined;
  }

  str(name: string, d: string): string {
    const x = this.v[name];
    return typeof x === 'string' ? x : d;
  }

  oneOf<T extends string>(name: string, choices: readonly T[], d: T): T {
    const x = this.str(name, d);
    if (!(choices as readonly string[]).includes(x)) throw new Error(`--${name} must be one of ${choices.join('|')}`);
    return x as T;
  }

  num(name: string, d: number): number {
    const x = this.v[name];
    if (typeof x !== 'string') return d;
    const n = Number(x);
    if (!Number.isFinite(n)) throw new Error(`--${name} must be a number`);
    return n;
  }

  int(name: string, d: number, min = 0): number {
    const n = this.num(name, d);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
    return n;
  }

  optInt(name: string, min = 1): number | undefined {
    return this.has(name) ? this.int(name, 0, min) : undefined;
  }

  bool(name: string): boolean {
    return this.v[name] === true;
  }
}
