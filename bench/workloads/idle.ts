import type { Opts } from '../options.ts';
import type { CommonOptions, RunOutput, Workload } from '../workload.ts';

/**
 * Idle: no requests for --seconds (10): what the server costs doing nothing (timers, polling,
 * lease and compaction loops). Read the CPU and database rows; there are no requests.
 */
export function idleWorkload(o: Opts, common: CommonOptions): Workload {
  const seconds = common.seconds ?? o.num('seconds', common.smoke ? 1 : 10);
  return {
    name: 'idle',
    params: `seconds=${seconds}`,
    async run(_ctx, phase): Promise<RunOutput> {
      const out: RunOutput = { requests: 0, errors: 0, errorSamples: [], seconds: 0, latency: undefined, unit: 'nothing (idle server)', noRates: true, extra: {} };
      if (phase.warmup) return out;
      await new Promise((r) => setTimeout(r, seconds * 1000));
      return { ...out, seconds };
    },
  };
}
