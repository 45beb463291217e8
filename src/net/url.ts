/**
 * etcd-style listen URLs: `http://host:port`, `https://host:port`, or a bare `host:port`
 * (taken as http). etcd's default client port is 2379; port 0 picks a free port.
 */
export interface ListenUrl {
  /** The URL as given (for logs). */
  readonly raw: string;
  readonly scheme: 'http' | 'https';
  /** Host for net.Server.listen (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
}

export function parseListenUrl(raw: string): ListenUrl {
  const withScheme = raw.includes('://') ? raw : `http://${raw}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new Error(`invalid listen URL "${raw}" (use e.g. http://127.0.0.1:2379)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new Error(`listen URL "${raw}": scheme must be http or https`);
  }
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) {
    throw new Error(`listen URL "${raw}" must not have a path, query or fragment`);
  }
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  // URL drops a scheme's default port (:80, :443), so read the port from the text itself.
  const authority = withScheme.slice(withScheme.indexOf('://') + 3).split('/')[0] ?? '';
  const m = /:(\d+)$/.exec(authority);
  const port = m ? Number(m[1]) : 2379;
  if (port > 65535) throw new Error(`listen URL "${raw}": port out of range`);
  return { raw, scheme: u.protocol === 'https:' ? 'https' : 'http', host, port };
}
