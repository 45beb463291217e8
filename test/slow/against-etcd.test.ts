/**
 * The etcd-comparison mode: every KV test file that talks to its server through openTarget
 * (test/helpers/kvtarget.ts) runs again with PGETCD_TEST_AGAINST_ETCD=1, i.e. against a fresh
 * real etcd, so the expected values the tests pin are checked to be etcd's. Needs `etcd` on
 * PATH (.ci/run installs it); skipped, with a note, without it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { etcdBinary } from '../helpers/kvtarget.ts';

const TEST_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The test files written against a KvTarget. */
function kvTargetFiles(): string[] {
  return fs.readdirSync(TEST_DIR)
    .filter((f) => f.endsWith('.test.ts') && /\bopenTarget\(/.test(fs.readFileSync(path.join(TEST_DIR, f), 'utf8')))
    .sort()
    .map((f) => path.join(TEST_DIR, f));
}

describe('KV tests against a real etcd (PGETCD_TEST_AGAINST_ETCD=1)', { skip: etcdBinary() ? false : 'etcd is not installed (.ci/run installs etcd-server)' }, () => {
  it('pass against etcd too', async (t) => {
    const files = kvTargetFiles();
    assert.ok(files.length >= 4, `found ${files.length} KvTarget test files`);
    t.diagnostic(`running against etcd: ${files.map((f) => path.basename(f)).join(', ')}`);
    const out: string[] = [];
    const code = await new Promise<number>((resolve) => {
      const env: NodeJS.ProcessEnv = { ...process.env, PGETCD_TEST_AGAINST_ETCD: '1' };
      // Set by node's test runner for its children: with it, a nested `node --test` runs nothing.
      delete env.NODE_TEST_CONTEXT;
      const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=tap', ...files], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.on('data', (d: Buffer) => out.push(d.toString()));
      child.stderr.on('data', (d: Buffer) => out.push(d.toString()));
      child.on('exit', (c) => resolve(c ?? 1));
    });
    const text = out.join('');
    const summary = text.split('\n').filter((l) => /^# (tests|pass|fail|skipped)/.test(l)).join('; ');
    t.diagnostic(summary);
    const count = (what: string): number => Number(/^# (\w+) (\d+)$/m.exec(text.split('\n').filter((l) => l.startsWith(`# ${what} `)).pop() ?? '')?.[2] ?? -1);
    assert.ok(count('pass') > 0, `the nested run passed no test:\n${text.slice(-4000)}`);
    const failures = text.split('\n').filter((l) => /^\s*not ok /.test(l));
    assert.equal(code, 0, `against etcd: ${summary}\n${failures.join('\n')}\n${text.slice(-4000)}`);
  });
});
