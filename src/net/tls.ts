import fs from 'node:fs';
import tls from 'node:tls';
import type { Logger } from '../log.ts';

/** etcd's client TLS settings (--cert-file, --key-file, --client-cert-auth, --trusted-ca-file, ...). */
export interface TlsSettings {
  certFile: string;
  keyFile: string;
  /** Require a client certificate signed by trustedCaFile (refused at the handshake otherwise). */
  clientCertAuth: boolean;
  trustedCaFile?: string | undefined;
  /** Go (etcd) cipher suite names; TLS 1.2 only, as in Go. Empty = Node's defaults. */
  cipherSuites: readonly string[];
  minVersion: 'TLS1.2' | 'TLS1.3';
}

/** Go's names (etcd's --cipher-suites) for OpenSSL's. */
const GO_CIPHERS: Record<string, string> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
};

/** TLS 1.3's suites are not configurable in Go either; they stay on. */
const TLS13 = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

/** OpenSSL's cipher string for etcd's --cipher-suites; throws naming the first unknown suite. */
export function opensslCiphers(suites: readonly string[]): string | undefined {
  if (suites.length === 0) return undefined;
  const out = suites.map((s) => {
    const o = GO_CIPHERS[s];
    if (!o) throw new Error(`unknown cipher suite "${s}" (use Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)`);
    return o;
  });
  return `${TLS13}:${out.join(':')}`;
}

/** The files' current contents as secure-context options; throws if any is unreadable or they do not pair. */
export function readSecureContext(s: TlsSettings): tls.SecureContextOptions {
  const opts: tls.SecureContextOptions = {
    cert: fs.readFileSync(s.certFile),
    key: fs.readFileSync(s.keyFile),
    ...(s.trustedCaFile ? { ca: fs.readFileSync(s.trustedCaFile) } : {}),
    minVersion: s.minVersion === 'TLS1.3' ? 'TLSv1.3' : 'TLSv1.2',
  };
  const ciphers = opensslCiphers(s.cipherSuites);
  if (ciphers) opts.ciphers = ciphers;
  // Throws "key values mismatch" and friends now rather than at the first handshake.
  tls.createSecureContext(opts);
  return opts;
}

/** Options for a tls.Server serving etcd's client port (HTTP/2 for gRPC, HTTP/1.1 for the rest). */
export function serverOptions(s: TlsSettings): tls.TlsOptions {
  return {
    ...readSecureContext(s),
    ALPNProtocols: ['h2', 'http/1.1'],
    requestCert: s.clientCertAuth,
    rejectUnauthorized: s.clientCertAuth,
  };
}

/**
 * Keeps TLS servers' certificates current: polls the files' stat (which follows the symlinks a
 * kubelet-mounted Secret swaps) and, once they changed and read as a valid pair, hands the new
 * context to every server with setSecureContext. Established connections keep their session;
 * only new handshakes see the new certificate. A half-written rotation (new cert, old key) is
 * skipped with a warning and retried at the next change.
 */
export class CertWatcher {
  private readonly servers = new Set<tls.Server>();
  private readonly files: string[];
  private timer: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;
  private lastStamp: string;

  constructor(private readonly settings: TlsSettings, private readonly log: Logger | undefined, private readonly intervalMs = 1000) {
    this.files = [settings.certFile, settings.keyFile, ...(settings.trustedCaFile ? [settings.trustedCaFile] : [])];
    this.lastStamp = this.stamp();
  }

  add(server: tls.Server): void {
    this.servers.add(server);
    server.once('close', () => this.servers.delete(server));
    this.timer ??= setInterval(() => this.check(), this.intervalMs).unref();
  }

  private stamp(): string {
    return this.files.map((f) => {
      try {
        const st = fs.statSync(f);
        return `${st.ino}:${st.size}:${st.mtimeMs}`;
      } catch {
        return 'missing';
      }
    }).join('|');
  }

  private check(): void {
    const now = this.stamp();
    if (now === this.lastStamp) return;
    this.lastStamp = now;
    // Writers rarely replace both files in one instant: settle briefly before reading.
    clearTimeout(this.pending);
    this.pending = setTimeout(() => this.reload(), 200).unref();
  }

  /** Reads the files now and applies them; false (and a warning) if they are not a valid pair. */
  reload(): boolean {
    let opts: tls.SecureContextOptions;
    try {
      opts = readSecureContext(this.settings);
    } catch (err) {
      this.log?.warn({ error: (err as Error).message }, 'certificate files changed but do not load; keeping the current certificate');
      return false;
    }
    for (const s of this.servers) s.setSecureContext(opts);
    this.log?.info({ certFile: this.settings.certFile, servers: this.servers.size }, 'reloaded TLS certificates');
    return true;
  }

  close(): void {
    clearInterval(this.timer);
    clearTimeout(this.pending);
    this.servers.clear();
  }
}
