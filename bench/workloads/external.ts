import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { RunOutput, Workload } from '../workload.ts';

/**
 * A workload that is a program of its own (`node --import tsx FILE --endpoints a,b ARGS`, with
 * PGETCD_BENCH_ENDPOINTS set too): its output is passed through; the runner still measures the
 * server around it. It counts as one request; its exit code decides success.
 */
export function externalWorkload(name: string, file: string, args: string[]): Workload {
  return {
    name,
    params: `${file} ${args.join(' ')}`.trim(),
    async run(ctx, phase): Promise<RunOutput> {
      const empty: RunOutput = { requests: 0, errors: 0, errorSamples: [], seconds: 0, latency: undefined, unit: `${name} program run (its own figures are printed above)`, noRates: true, extra: {} };
      if (phase.warmup) return empty;
      const start = performance.now();
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', file, '--endpoints', ctx.endpoints.join(','), ...args], {
          stdio: ['ignore', 'inherit', 'inherit'],
          env: { ...process.env, PGETCD_BENCH_ENDPOINTS: ctx.endpoints.join(','), PGETCD_BENCH_TARGET: ctx.target },
        });
        child.on('error', reject);
        child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0)));
      });
      const seconds = (performance.now() - start) / 1000;
      return { ...empty, requests: code === 0 ? 1 : 0, errors: code === 0 ? 0 : 1, errorSamples: code === 0 ? [] : [`${file} exited ${code}`], seconds, extra: { 'exit code': code } };
    },
  };
}
