import fs from 'node:fs';

/**
 * How one type of setting is read from text (a flag, an environment variable or a config file
 * value) and shown back (`--help`, the README table). parse() throws a plain Error whose message
 * says what is wrong; the loader adds which setting and where it came from.
 */
export interface Kind<T> {
  /** Placeholder in --help, e.g. URLS, DURATION; '' for booleans (they take no value). */
  readonly metavar: string;
  parse(text: string): T;
  show(value: T): string;
}

export const str: Kind<string> = {
  metavar: 'STRING',
  parse: (t) => t,
  show: (v) => v,
};

export const optStr: Kind<string | undefined> = {
  metavar: 'STRING',
  parse: (t) => (t === '' ? undefined : t),
  show: (v) => v ?? '',
};

export const bool: Kind<boolean> = {
  metavar: '',
  parse: (t) => {
    const v = t.trim().toLowerCase();
    if (v === 'true' || v === '1' || v === 'yes' || v === 'on') return true;
    if (v === 'false' || v === '0' || v === 'no' || v === 'off') return false;
    throw new Error(`"${t}" is not a boolean (use true or false)`);
  },
  show: (v) => String(v),
};

function integer(min: number): Kind<number> {
  return {
    metavar: 'N',
    parse: (t) => {
      const n = Number(t.trim());
      if (t.trim() === '' || !Number.isInteger(n) || n < min) {
        throw new Error(`"${t}" is not ${min > 0 ? 'a positive' : min === 0 ? 'a non-negative' : 'an'} integer`);
      }
      return n;
    },
    show: (v) => String(v),
  };
}

/** A positive integer. */
export const int = integer(1);
/** An integer >= 0 (0 usually means "off"). */
export const count = integer(0);
/** Any integer (etcd's --quota-backend-bytes: 0 is the default, below 0 is off). */
export const signedInt = integer(Number.NEGATIVE_INFINITY);

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Milliseconds from a Go-style duration ("100ms", "1m30s", "10m"). A bare number means seconds,
 * as pgetcd has always read it.
 */
export function parseDuration(s: string): number {
  const t = s.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    end = re.lastIndex;
  }
  if (t === '' || end !== t.length) throw new Error(`"${s}" is not a duration (use e.g. 500ms, 10s, 1m30s)`);
  return total;
}

function showDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Milliseconds. */
export const duration: Kind<number> = { metavar: 'DURATION', parse: parseDuration, show: showDuration };

function splitList(t: string): string[] {
  return t.split(',').map((x) => x.trim()).filter(Boolean);
}

/** Comma-separated words. */
export const list: Kind<string[]> = { metavar: 'LIST', parse: splitList, show: (v) => v.join(',') };

/** Comma-separated http:// or https:// URLs (etcd's --listen-client-urls form; a bare host:port means http). */
export const urls: Kind<string[]> = {
  metavar: 'URLS',
  parse: (t) => {
    const out = splitList(t);
    for (const u of out) checkUrl(u);
    return out;
  },
  show: (v) => v.join(','),
};

function checkUrl(u: string): void {
  let parsed: URL;
  try {
    parsed = new URL(u.includes('://') ? u : `http://${u}`);
  } catch {
    throw new Error(`"${u}" is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new Error(`"${u}" must be http:// or https://`);
  }
  if (parsed.port !== '' && !(Number(parsed.port) > 0)) throw new Error(`"${u}" has no valid port`);
}

/**
 * postgres:// URLs separated by commas. A comma also separates the hosts of one libpq multi-host
 * URL, so a list item starts only where `postgres://` or `postgresql://` does.
 */
export const pgUrls: Kind<string[]> = {
  metavar: 'URLS',
  parse: (t) => {
    const out = t.split(/,(?=\s*postgres(?:ql)?:\/\/)/).map((x) => x.trim()).filter(Boolean);
    for (const u of out) if (!/^postgres(ql)?:\/\//.test(u)) throw new Error('not a list of postgres:// URLs');
    return out;
  },
  show: (v) => v.join(','),
};

/** One of a fixed set of words. */
export function choice<const W extends string>(words: readonly W[]): Kind<W> {
  return {
    metavar: words.join('|'),
    parse: (t) => {
      const v = t.trim() as W;
      if (!words.includes(v)) throw new Error(`"${t}" is not one of ${words.join(', ')}`);
      return v;
    },
    show: (v) => v,
  };
}

/** A path to a file that must be readable now (certificates, keys, password files); '' = unset. */
export const file: Kind<string | undefined> = {
  metavar: 'FILE',
  parse: (t) => {
    if (t === '') return undefined;
    try {
      fs.accessSync(t, fs.constants.R_OK);
      if (!fs.statSync(t).isFile()) throw new Error('not a file');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(`cannot read "${t}"${code ? ` (${code})` : ''}`);
    }
    return t;
  },
  show: (v) => v ?? '',
};
