/**
 * libpq's multi-host URLs (`postgres://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write`):
 * postgres.js understands them itself; node-postgres (the LISTEN session, the lease and
 * member sessions, migrations) takes one host at a time, so such a URL is split into one URL per
 * host, tried in the order given, as libpq does.
 */

/** The values of target_session_attrs that make sense for the primary endpoint. */
const PRIMARY_ATTRS = new Set(['read-write', 'primary', 'any']);

/** The comma-separated host list of a URL, or undefined when it names one host. */
function hostList(url: string): { before: string; hosts: string[]; after: string } | undefined {
  const scheme = url.indexOf('://');
  if (scheme < 0) return undefined;
  const start = scheme + 3;
  let end = url.slice(start).search(/[/?#]/);
  end = end < 0 ? url.length : start + end;
  const authority = url.slice(start, end);
  const at = authority.lastIndexOf('@');
  const hostPart = authority.slice(at + 1);
  if (!hostPart.includes(',')) return undefined;
  return { before: url.slice(0, start + at + 1), hosts: hostPart.split(','), after: url.slice(end) };
}

/** One URL per host of a (possibly) multi-host URL, without target_session_attrs. */
export function perHostUrls(url: string): string[] {
  const parts = hostList(url);
  const urls = parts ? parts.hosts.map((h) => parts.before + h + parts.after) : [url];
  return urls.map(withoutSessionAttrs);
}

/** True when the URL lists more than one host. */
export function isMultiHost(url: string): boolean {
  return hostList(url) !== undefined;
}

function withoutSessionAttrs(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const hash = url.indexOf('#', q);
  const query = url.slice(q + 1, hash < 0 ? undefined : hash);
  const kept = query.split('&').filter((p) => p !== '' && !p.startsWith('target_session_attrs='));
  return url.slice(0, q) + (kept.length ? `?${kept.join('&')}` : '') + (hash < 0 ? '' : url.slice(hash));
}

/**
 * Checks the endpoint's target_session_attrs: pgetcd writes, so its endpoint must lead to a
 * primary. Absent means read-write (libpq's default "any" would let a standby answer writes
 * with errors until someone notices).
 */
export function checkPrimaryAttrs(url: string): void {
  const m = /[?&]target_session_attrs=([^&#]*)/.exec(url);
  if (m && !PRIMARY_ATTRS.has(decodeURIComponent(m[1]!))) {
    throw new Error(`--endpoint target_session_attrs=${m[1]} cannot be used: pgetcd writes, so its endpoint must be a primary (read-write); standbys go in --read-endpoint`);
  }
}

/** host:port of each host, for logs (no credentials). */
export function describeHosts(url: string): string[] {
  return perHostUrls(url).map((u) => {
    try {
      const p = new URL(u);
      return `${p.hostname}${p.port ? ':' + p.port : ''}`;
    } catch {
      return '?';
    }
  });
}
