import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * CI runs the benchmark suite's smoke mode: every workload, tiny, against pgetcd (and etcd when
 * it is on PATH). No thresholds: speed is measured in bench/, not asserted in tests; this only
 * keeps the benchmarks runnable.
 */
describe('bench smoke', () => {
  it('runs every workload once and exits 0', { timeout: 300_000 }, async (t) => {
    const out: string[] = [];
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'run.ts'), 'smoke'], {
        cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGETCD_BENCH_DATABASE_URL: '' },
      });
      child.stdout.on('data', (d: Buffer) => out.push(d.toString()));
      child.stderr.on('data', (d: Buffer) => out.push(d.toString()));
      child.on('exit', (c) => resolve(c ?? 1));
    });
    const text = out.join('');
    for (const line of text.split('\n').filter((l) => /req\/s|requests\/s|ratio|FAILED/i.test(l)).slice(0, 40)) t.diagnostic(line);
    assert.equal(code, 0, text.slice(-4000));
  });
});
