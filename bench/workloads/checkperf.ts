import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { Opts } from '../options.ts';
import type { CommonOptions, RunOutput, Workload } from '../workload.ts';

/**
 * `etcdctl check perf --load=L` against the target: etcdctl's own load (60 s of rate-limited
 * puts from many clients) and its own verdict. Its printed figures become extra rows.
 */
export function checkPerfWorkload(o: Opts, _common: CommonOptions): Workload {
  const load = o.oneOf('load', ['s', 'm', 'l', 'xl'] as const, 's');
  const etcdctl = o.str('etcdctl', 'etcdctl');
  return {
    name: 'check-perf',
    params: `etcdctl check perf --load=${load}`,
    async run(ctx, phase): Promise<RunOutput> {
      if (phase.warmup) return { requests: 0, errors: 0, errorSamples: [], seconds: 0, latency: undefined, unit: 'put', extra: {} };
      const start = performance.now();
      const text = await runEtcdctl(etcdctl, ['--endpoints', ctx.endpoints.join(','), '--command-timeout', '60s', 'check', 'perf', `--load=${load}`]);
      const seconds = (performance.now() - start) / 1000;
      // etcdctl redraws a progress bar with carriage returns: keep only its verdict lines.
      ctx.note((text.match(/(PASS|FAIL)(:[^\r\n]*)?|Slowest request took too long[^\r\n]*/g) ?? ['no verdict']).join(' | '));
      const num = (re: RegExp): number | undefined => { const m = re.exec(text); return m ? Number(m[1]) : undefined; };
      const throughput = num(/Throughput (?:is|too low:) (\d+(?:\.\d+)?) writes\/s/);
      const slowest = num(/request took(?: too long:)? (\d+(?:\.\d+)?)s/);
      const stddev = num(/Stddev (?:is|too high:) (\d+(?:\.\d+)?)s/);
      const verdict = /^(PASS|FAIL)\s*$/m.exec(text)?.[1] ?? 'no verdict';
      const extra: Record<string, number | string> = { verdict };
      if (throughput !== undefined) extra['etcdctl writes/s'] = throughput;
      if (slowest !== undefined) extra['etcdctl slowest ms'] = +(slowest * 1000).toFixed(3);
      if (stddev !== undefined) extra['etcdctl stddev ms'] = +(stddev * 1000).toFixed(3);
      const ok = throughput !== undefined;
      return {
        // etcdctl measures for 60 s; the requests it completed follow from its throughput.
        requests: ok ? Math.round(throughput * 60) : 0,
        errors: ok ? 0 : 1,
        errorSamples: ok ? [] : [text.trim().slice(-500)],
        // etcdctl's measuring window is 60 s (the server CPU window also covers its final delete).
        seconds: ok ? 60 : seconds,
        latency: undefined,
        unit: 'put',
        extra,
      };
    },
  };
}

function runEtcdctl(bin: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGTERM'), 300_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', () => { clearTimeout(timer); resolve(out); });
  });
}
