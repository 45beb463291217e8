import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** A throwaway certificate authority and the certificates it signs, made with openssl at run time. */
export interface Ca {
  dir: string;
  cert: string;
  key: string;
}

export interface Issued {
  cert: string;
  key: string;
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** P-256 keys: what etcd's docs use with cfssl, and quick to make. */
const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makeCa(dir: string, name: string): Ca {
  fs.mkdirSync(dir, { recursive: true });
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}-key.pem`);
  openssl(['req', '-x509', ...KEY, '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { dir, cert, key };
}

/**
 * A leaf certificate for both server and client use, with the given subject alternative names
 * (e.g. ['DNS:localhost', 'IP:127.0.0.1']). `serial` makes rotated certificates distinguishable.
 */
export function issue(ca: Ca, name: string, cn: string, sans: string[], serial = Date.now()): Issued {
  const cert = path.join(ca.dir, `${name}.pem`);
  const key = path.join(ca.dir, `${name}-key.pem`);
  const csr = path.join(ca.dir, `${name}.csr`);
  const ext = path.join(ca.dir, `${name}.ext`);
  fs.writeFileSync(ext, [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth,clientAuth',
    ...(sans.length > 0 ? [`subjectAltName=${sans.join(',')}`] : []),
    '',
  ].join('\n'));
  openssl(['req', ...KEY, '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`], ca.dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(serial), '-days', '2', '-out', cert, '-extfile', ext], ca.dir);
  return { cert, key };
}
