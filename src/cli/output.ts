/** How operator commands print: aligned tables for people, JSON for scripts, one line on error. */

/** An error an operator command reports as one line; `code` is the process exit status. */
export class CliError extends Error {
  constructor(message: string, readonly code = 1) {
    super(message);
  }
}

export type Format = 'table' | 'json';

export function parseFormat(v: string | undefined): Format {
  if (v === undefined || v === 'table') return 'table';
  if (v === 'json') return 'json';
  throw new CliError(`-o must be table or json, not "${v}"`, 2);
}

export type Cell = string | number | boolean | null | undefined;

/** Renders rows as an aligned text table with the given columns (numbers right-aligned). */
export function table(rows: ReadonlyArray<Record<string, Cell>>, columns: string[]): string {
  const text = (c: Cell): string => (c === null || c === undefined ? '' : String(c));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => text(r[c]).length)));
  const line = (cells: Cell[], header: boolean): string =>
    cells
      .map((c, i) => (!header && typeof c === 'number' ? text(c).padStart(widths[i]!) : text(c).padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase()), true), ...rows.map((r) => line(columns.map((c) => r[c]), false))].join('\n') + '\n';
}

/** Prints a result: `json` as one JSON document, otherwise through the human renderer. */
export function print(format: Format, value: unknown, human: () => string): void {
  process.stdout.write(format === 'json' ? JSON.stringify(value, null, 2) + '\n' : human());
}

/** Bytes for people: 1.5 MiB. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}
