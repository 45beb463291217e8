import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Ca, Issued } from './certs.ts';

/** Debian's PostgreSQL binaries (newest major), or undefined: tests that need them skip. */
export function debianPgBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const majors = fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, 'bin', 'postgres'))).sort((a, b) => Number(b) - Number(a));
  return majors[0] ? path.join(root, majors[0], 'bin') : undefined;
}

export interface TlsPostgres {
  port: number;
  password: string;
  stop(): void;
}

/** Runs a PostgreSQL program as the postgres user when we are root (PostgreSQL refuses root). */
function runPg(bin: string, args: string[]): void {
  const asRoot = process.getuid?.() === 0;
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  execFileSync(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A PostgreSQL that accepts only TLS connections with a client certificate from `ca`
 * (hostssl + clientcert=verify-ca) and a password (scram-sha-256), on 127.0.0.1:port.
 */
export function startTlsPostgres(bin: string, ca: Ca, server: Issued, port: number): TlsPostgres {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgetcd-tlspg-'));
  fs.chmodSync(dir, 0o755);
  const password = `pw-${Math.random().toString(36).slice(2)}:x`;
  const pwfile = path.join(dir, 'pw');
  fs.writeFileSync(pwfile, password + '\n');
  const data = path.join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? Number(execFileSync('id', ['-u', 'postgres']).toString()) : undefined;
  const group = asRoot ? Number(execFileSync('id', ['-g', 'postgres']).toString()) : undefined;
  if (owner !== undefined && group !== undefined) {
    fs.chownSync(dir, owner, group);
    fs.chownSync(pwfile, owner, group);
  }
  runPg(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C']);
  for (const [from, to] of [[server.cert, 'server.crt'], [server.key, 'server.key'], [ca.cert, 'ca.crt']] as const) {
    const p = path.join(data, to);
    fs.copyFileSync(from, p);
    fs.chmodSync(p, 0o600);
    if (owner !== undefined && group !== undefined) fs.chownSync(p, owner, group);
  }
  fs.writeFileSync(path.join(data, 'pg_hba.conf'), 'local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n');
  runPg(path.join(bin, 'pg_ctl'), ['-D', data, '-w', '-l', path.join(dir, 'log'), 'start', '-o',
    `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=ca.crt`]);
  return {
    port,
    password,
    stop: () => {
      try {
        runPg(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
