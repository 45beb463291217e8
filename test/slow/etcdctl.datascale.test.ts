/**
 * `etcdctl check datascale` reaches its verdict against pgetcd (issue 18, item 3): it writes
 * 10,000 keys over gRPC and reads process_resident_memory_bytes from http://<endpoint>/metrics,
 * so it needs HTTP/1.1 beside gRPC on the client port. About a minute: test/slow.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startServer, type TestServer } from '../helpers/server.ts';

const execFileP = promisify(execFile);
const ETCDCTL = ['/usr/bin/etcdctl', '/usr/local/bin/etcdctl'].find((p) => existsSync(p));

describe('etcdctl check datascale', { skip: ETCDCTL ? false : 'etcdctl not installed' }, () => {
  let srv: TestServer;
  before(async () => { srv = await startServer({}); });
  after(async () => srv?.stop());

  it('--load=s gives its verdict', { timeout: 600_000 }, async () => {
    const { stdout } = await execFileP(ETCDCTL!, ['--endpoints', srv.endpoint, 'check', 'datascale', '--load=s'], {
      env: { ...process.env, ETCDCTL_API: '3' }, maxBuffer: 64 * 1024 * 1024, timeout: 580_000,
    });
    assert.match(stdout, /PASS: Approximate system memory used : [\d.]+ MB\./);
  });
});
