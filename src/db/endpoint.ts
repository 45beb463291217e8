import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { ConfigError } from '../config/load.ts';
import { perHostUrls } from './hosts.ts';
import { targetFromUrl, type PgTarget } from './target.ts';

/** Database TLS and password settings beside the URL (k3s's --datastore-* names). */
export interface EndpointOptions {
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  passwordFile?: string | undefined;
}

/** libpq's TLS parameters, taken out of the URL and applied by pgetcd to every driver the same way. */
const TLS_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey'] as const;
const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

function readFile(setting: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${setting}: cannot read "${file}" (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/**
 * TLS options as libpq reads sslmode: disable/allow/prefer = plaintext (pgetcd does not fall
 * back silently between the two), require = encrypted without checking the certificate unless
 * a root certificate is given (then as verify-ca), verify-ca = chain checked, verify-full =
 * chain and host name checked. A CA file without sslmode means verify-full, as k3s/kine do.
 */
function tlsOptions(mode: string | undefined, ca: string | undefined, cert: string | undefined, key: string | undefined, from: { ca: string; cert: string; key: string }): ConnectionOptions | undefined {
  const effective = mode ?? (ca || cert ? 'verify-full' : undefined);
  if (effective === undefined || effective === 'disable' || effective === 'allow' || effective === 'prefer') return undefined;
  if ((cert === undefined) !== (key === undefined)) throw new ConfigError(`${cert ? from.key : from.cert}: a client certificate needs both a certificate and a key file`);
  const opts: ConnectionOptions = {};
  if (ca && ca !== 'system') opts.ca = readFile(from.ca, ca);
  if (cert) opts.cert = readFile(from.cert, cert);
  if (key) opts.key = readFile(from.key, key);
  if (effective === 'require' && !opts.ca) opts.rejectUnauthorized = false;
  else if (effective === 'require' || effective === 'verify-ca') opts.checkServerIdentity = () => undefined;
  return opts;
}

/**
 * The --endpoint URL and the datastore flags as a target: TLS options and the password resolved
 * once (URL, then --datastore-password-file, then PGPASSWORD, then PGPASSFILE/~/.pgpass), so the
 * pool, the writer connections, LISTEN, the lease session and the migrations all connect alike.
 */
export function resolveEndpoint(url: string, opts: EndpointOptions = {}, env: NodeJS.ProcessEnv = process.env): PgTarget {
  // String surgery rather than new URL(): a libpq multi-host URL (h1:5432,h2:5432) is no WHATWG URL.
  const m = /^(postgres(?:ql)?:\/\/)(?:([^@/?#]*)@)?([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?$/.exec(url);
  if (!m) throw new ConfigError('--endpoint: not a valid postgres:// or postgresql:// URL');
  const [, scheme, userinfo, hosts, pathPart, query, hash] = m;
  const params = new URLSearchParams(query ?? '');
  const p = Object.fromEntries(TLS_PARAMS.map((k) => [k, params.get(k) ?? undefined])) as Record<(typeof TLS_PARAMS)[number], string | undefined>;
  for (const k of TLS_PARAMS) params.delete(k);
  if (p.sslmode !== undefined && !SSL_MODES.includes(p.sslmode)) throw new ConfigError(`--endpoint: sslmode "${p.sslmode}" is not one of ${SSL_MODES.join(', ')}`);
  const ssl = tlsOptions(
    p.sslmode,
    p.sslrootcert ?? opts.caFile,
    p.sslcert ?? opts.certFile,
    p.sslkey ?? opts.keyFile,
    {
      ca: p.sslrootcert ? '--endpoint sslrootcert' : '--datastore-cafile',
      cert: p.sslcert ? '--endpoint sslcert' : '--datastore-certfile',
      key: p.sslkey ? '--endpoint sslkey' : '--datastore-keyfile',
    },
  );
  const colon = userinfo?.indexOf(':') ?? -1;
  const user = userinfo === undefined ? undefined : colon >= 0 ? userinfo.slice(0, colon) : userinfo;
  let urlPassword: string | undefined;
  try {
    urlPassword = userinfo !== undefined && colon >= 0 ? decodeURIComponent(userinfo.slice(colon + 1)) : undefined;
  } catch {
    throw new ConfigError('--endpoint: the password in the URL is not valid percent-encoding');
  }
  const q = params.toString();
  const clean = `${scheme}${user ? `${user}@` : ''}${hosts}${pathPart}${q ? `?${q}` : ''}${hash ?? ''}`;
  let target: PgTarget;
  try {
    target = targetFromUrl(clean);
  } catch (err) {
    const msg = (err as Error).message;
    throw new ConfigError(msg.startsWith('--endpoint') ? msg : `--endpoint: ${msg}`);
  }
  const first = hosts!.split(',')[0] ?? '';
  const password = urlPassword || passwordFromFile(opts.passwordFile) || env.PGPASSWORD || pgpass(target, first, pathPart ?? '', user, env);
  return { ...target, ...(ssl && !target.host?.startsWith('/') ? { ssl } : {}), ...(password ? { password } : {}) };
}

/**
 * The --read-endpoint URLs as one target per standby: every host of a multi-host URL is a
 * standby of its own (target_session_attrs means nothing here). TLS and password are resolved
 * as for --endpoint, with the same --datastore-* files.
 */
export function resolveReadEndpoints(urls: readonly string[], opts: EndpointOptions = {}, env: NodeJS.ProcessEnv = process.env): PgTarget[] {
  const out: PgTarget[] = [];
  for (const url of urls) {
    let hosts: string[];
    try {
      hosts = perHostUrls(url);
    } catch {
      throw new ConfigError('--read-endpoint: not a valid postgres:// or postgresql:// URL');
    }
    for (const h of hosts) {
      try {
        out.push(resolveEndpoint(h, opts, env));
      } catch (err) {
        if (err instanceof ConfigError) throw new ConfigError(err.message.replace(/^--endpoint/, '--read-endpoint'));
        throw err;
      }
    }
  }
  return out;
}

function passwordFromFile(file: string | undefined): string | undefined {
  if (!file) return undefined;
  const text = readFile('--datastore-password-file', file).replace(/\r?\n$/, '');
  if (text === '') throw new ConfigError(`--datastore-password-file: "${file}" is empty`);
  return text;
}

/** The first matching line of a libpq password file (host:port:database:user:password, * wildcards). */
function pgpass(t: PgTarget, firstHost: string, pathPart: string, user: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const file = env.PGPASSFILE ?? path.join(env.HOME ?? os.homedir(), '.pgpass');
  let text: string;
  try {
    const st = fs.statSync(file);
    // libpq ignores a password file that others can read.
    if (!st.isFile() || (st.mode & 0o077) !== 0) return undefined;
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const hp = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(firstHost);
  const host = t.host ?? (hp?.[1] ? decodeURIComponent(hp[1].replace(/^\[|\]$/g, '')) : 'localhost');
  const port = String(t.port ?? (hp?.[2] || 5432));
  const database = t.database ?? safeDecode(pathPart.slice(1));
  const login = t.user ?? safeDecode(user ?? '');
  const want = [host, port, database || login, login];
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/(?<!\\):/).map((f) => f.replace(/\\([:\\])/g, '$1'));
    if (fields.length < 5) continue;
    const ok = want.every((w, i) => fields[i] === '*' || fields[i] === w || (i === 0 && fields[i] === 'localhost' && w.startsWith('/')));
    if (ok) return fields.slice(4).join(':');
  }
  return undefined;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
