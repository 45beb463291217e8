import fs from 'node:fs';
import YAML from 'yaml';
import type { Kind } from './kinds.ts';

/** One setting's definition: every way to give it and how it is documented comes from here. */
export interface Setting<T> {
  /** Flag name without dashes, etcd's spelling where etcd has the setting. */
  readonly flag: string;
  readonly kind: Kind<T>;
  readonly default: T;
  readonly help: string;
  /** Shared with etcd: also read from ETCD_<FLAG> and documented as etcd's. */
  readonly etcd?: boolean;
  /** Other flag names accepted (k3s/kine spellings), e.g. datastore-endpoint. */
  readonly aliases?: readonly string[];
  /** Extra environment variables, read after PGETCD_<FLAG> and ETCD_<FLAG>. */
  readonly env?: readonly string[];
  /** Key path in the --config-file YAML, default [flag] (etcd nests TLS keys, e.g. client-transport-security.cert-file). */
  readonly yaml?: readonly string[];
  /** The value may hold a credential: never echoed in errors; --help shows no default. */
  readonly secret?: boolean;
  /** Shown in --help instead of the default's text (e.g. "the listen URLs"). */
  readonly defaultText?: string;
  /** The flag may be given several times: the values are joined with commas (list kinds). */
  readonly repeatable?: boolean;
}

/** Keeps T from being inferred from `default` alone (so '' infers string, not ''). */
export function setting<T>(s: Omit<Setting<T>, 'default'> & { readonly default: NoInfer<T> }): Setting<T> {
  return s;
}

export type SettingTable = Record<string, Setting<unknown>>;
export type ValuesOf<S extends SettingTable> = { -readonly [K in keyof S]: S[K] extends Setting<infer T> ? T : never };

/** A configuration mistake: main prints the message as one line and exits 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function envNames(s: Setting<unknown>): string[] {
  const up = (f: string): string => f.toUpperCase().replace(/-/g, '_');
  return [`PGETCD_${up(s.flag)}`, ...(s.etcd ? [`ETCD_${up(s.flag)}`] : []), ...(s.env ?? [])];
}

export function yamlPath(s: Setting<unknown>): readonly string[] {
  return s.yaml ?? [s.flag];
}

interface Raw {
  text: string;
  from: string;
}

/** Flags to raw text per setting key. `--flag value`, `--flag=value`, `-flag`, booleans bare, `--no-flag`. */
function readArgv(table: SettingTable, argv: readonly string[]): { raw: Map<string, Raw>; help: boolean } {
  const byFlag = new Map<string, string>();
  for (const [key, s] of Object.entries(table)) {
    for (const f of [s.flag, ...(s.aliases ?? [])]) byFlag.set(f, key);
  }
  const raw = new Map<string, Raw>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--?([A-Za-z0-9][A-Za-z0-9-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new ConfigError(`unexpected argument "${arg}" (flags start with --; see --help)`);
    const name = m[1]!;
    if (name === 'h' || name === 'help') {
      help = true;
      continue;
    }
    let key = byFlag.get(name);
    let text = m[2];
    if (key === undefined && name.startsWith('no-')) {
      const k = byFlag.get(name.slice(3));
      if (k !== undefined && table[k]!.kind.metavar === '' && text === undefined) {
        key = k;
        text = 'false';
      }
    }
    if (key === undefined) throw new ConfigError(`unknown flag --${name} (see --help)`);
    const s = table[key]!;
    if (text === undefined) {
      if (s.kind.metavar === '') text = 'true';
      else {
        const next = argv[i + 1];
        if (next === undefined) throw new ConfigError(`--${name} needs a value`);
        text = next;
        i++;
      }
    }
    const earlier = raw.get(key);
    raw.set(key, { text: s.repeatable && earlier ? `${earlier.text},${text}` : text, from: `--${name}` });
  }
  return { raw, help };
}

function readEnv(table: SettingTable, env: NodeJS.ProcessEnv): Map<string, Raw> {
  const raw = new Map<string, Raw>();
  for (const [key, s] of Object.entries(table)) {
    for (const name of envNames(s)) {
      const v = env[name];
      if (v !== undefined && v !== '') {
        raw.set(key, { text: v, from: name });
        break;
      }
    }
  }
  return raw;
}

/**
 * etcd's sample config keys that pgetcd has no use for (clustering, peers, WAL, v2): accepted so
 * an etcd config file loads, and reported back so the caller can log them.
 */
const ETCD_KEYS_WITHOUT_MEANING = new Set([
  'wal-dir', 'snapshot-count', 'heartbeat-interval', 'election-timeout',
  'listen-peer-urls', 'max-snapshots', 'max-wals', 'cors', 'initial-advertise-peer-urls',
  'discovery', 'discovery-fallback', 'discovery-proxy', 'discovery-srv', 'initial-cluster',
  'initial-cluster-token', 'initial-cluster-state', 'strict-reconfig-check', 'enable-v2',
  'enable-pprof', 'proxy', 'proxy-failure-wait', 'proxy-refresh-interval', 'proxy-dial-timeout',
  'proxy-write-timeout', 'proxy-read-timeout', 'peer-transport-security', 'force-new-cluster',
  'logger', 'log-outputs', 'debug', 'log-package-levels', 'enable-grpc-gateway', 'v2-deprecation',
  'auto-tls', 'peer-auto-tls', 'self-signed-cert-validity', 'unsafe-no-fsync', 'metrics',
]);

function yamlText(v: unknown): string {
  if (Array.isArray(v)) return v.map((x) => String(x)).join(',');
  if (v === null) return '';
  return String(v);
}

function readConfigFile(table: SettingTable, file: string): { raw: Map<string, Raw>; ignored: string[] } {
  let doc: unknown;
  try {
    doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code ? e.code : (e.message.split('\n')[0] ?? 'unreadable');
    throw new ConfigError(`--config-file: cannot read "${file}": ${why}`);
  }
  if (doc === null || doc === undefined) return { raw: new Map(), ignored: [] };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`--config-file: "${file}" is not a YAML mapping`);
  const byPath = new Map<string, string>();
  for (const [key, s] of Object.entries(table)) byPath.set(yamlPath(s).join('.'), key);
  const raw = new Map<string, Raw>();
  const ignored: string[] = [];
  const walk = (obj: Record<string, unknown>, prefix: string[]): void => {
    for (const [k, v] of Object.entries(obj)) {
      const p = [...prefix, k];
      const dotted = p.join('.');
      const key = byPath.get(dotted);
      if (key !== undefined) {
        raw.set(key, { text: yamlText(v), from: `${file}: ${dotted}` });
      } else if (v !== null && typeof v === 'object' && !Array.isArray(v) && [...byPath.keys()].some((x) => x.startsWith(dotted + '.'))) {
        walk(v as Record<string, unknown>, p);
      } else if (ETCD_KEYS_WITHOUT_MEANING.has(dotted) || (prefix.length === 1 && ETCD_KEYS_WITHOUT_MEANING.has(k))) {
        ignored.push(dotted);
      } else {
        throw new ConfigError(`--config-file: unknown key "${dotted}" in "${file}"`);
      }
    }
  };
  walk(doc as Record<string, unknown>, []);
  return { raw, ignored };
}

export interface Loaded<S extends SettingTable> {
  values: ValuesOf<S>;
  /** Where each setting came from ('default', '--flag', 'PGETCD_X', 'file: key'). */
  sources: Record<keyof S, string>;
  /** Config-file keys of etcd's that pgetcd accepts and ignores. */
  ignored: string[];
  help: boolean;
}

/**
 * Precedence: flags, then environment, then the config file (named by --config-file or its
 * environment variables), then defaults. `configFileKey` names the table entry holding the file.
 */
export function load<S extends SettingTable>(table: S, configFileKey: keyof S & string, argv: readonly string[], env: NodeJS.ProcessEnv): Loaded<S> {
  const fromArgv = readArgv(table, argv);
  const fromEnv = readEnv(table, env);
  const fileRaw = fromArgv.raw.get(configFileKey) ?? fromEnv.get(configFileKey);
  const fromFile = fileRaw && fileRaw.text !== '' ? readConfigFile(table, fileRaw.text) : { raw: new Map<string, Raw>(), ignored: [] };
  const values = {} as Record<string, unknown>;
  const sources = {} as Record<string, string>;
  for (const [key, s] of Object.entries(table)) {
    const r = fromArgv.raw.get(key) ?? fromEnv.get(key) ?? fromFile.raw.get(key);
    if (!r) {
      values[key] = s.default;
      sources[key] = 'default';
      continue;
    }
    try {
      values[key] = s.kind.parse(r.text);
    } catch (err) {
      const why = s.secret ? 'invalid value' : (err as Error).message;
      throw new ConfigError(`--${s.flag}: ${why}${r.from === `--${s.flag}` ? '' : ` (from ${r.from})`}`);
    }
    sources[key] = r.from;
  }
  return { values: values as ValuesOf<S>, sources: sources as Record<keyof S, string>, ignored: fromFile.ignored, help: fromArgv.help };
}
