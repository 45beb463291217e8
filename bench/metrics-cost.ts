/**
 * `node --import tsx bench/metrics-cost.ts [--puts N] [--batch B] [--keys K]`: the CPU the metrics
 * add to one request, measured in this process on the exact code a put and a 10,000-key list go
 * through (the gRPC accounting wrapper of src/server/instrument.ts around a handler that answers
 * at once, the message size counting, Metrics.kvOps, and once per batch Metrics.batchCommitted),
 * with metrics extensive vs the same handler unwrapped (what `--metrics off` registers); plus
 * what one scrape of /metrics costs. The end-to-end on/off comparison (`npm run bench --
 * --compare-metrics`) is noisier than the difference; this bounds it from below. It does not
 * count prom-client's default collectors (event-loop delay monitor, GC observer), which run in
 * the background whatever the load: the end-to-end comparison includes them.
 */
import { parseArgs } from 'node:util';
import type * as grpc from '@grpc/grpc-js';
import { Metrics, type MetricsMode } from '../src/metrics/index.ts';
import { instrumentService } from '../src/server/instrument.ts';

const { values } = parseArgs({ options: { puts: { type: 'string' }, batch: { type: 'string' }, rounds: { type: 'string' } } });
const N = Number(values.puts ?? 2_000_000);
const BATCH = Number(values.batch ?? 20);
const ROUNDS = Number(values.rounds ?? 5);

type Callback = (err: null, value: object) => void;

function definition(path: string): grpc.ServiceDefinition {
  return {
    Put: {
      path, requestStream: false, responseStream: false, originalName: 'put',
      requestSerialize: (x: Buffer) => x, requestDeserialize: (b: Buffer) => b,
      responseSerialize: (x: Buffer) => x, responseDeserialize: (b: Buffer) => b,
    },
  } as unknown as grpc.ServiceDefinition;
}

/** One put's worth of server-side metric work: decode, handler (kvOps, a batch's share), encode. */
function setup(mode: MetricsMode | 'unwrapped'): { run: (n: number) => void; metrics: Metrics } {
  const metrics = new Metrics({ mode: mode === 'unwrapped' ? 'off' : mode, etcdVersion: '3.5.17', quotaBackendBytes: 2 ** 31 });
  const req = Buffer.alloc(300);
  const res = Buffer.alloc(40);
  let inBatch = 0;
  const impl = {
    Put: (_call: object, cb: Callback) => {
      metrics.kvOps(0, 1, 0);
      if (++inBatch === BATCH) {
        metrics.batchCommitted(BATCH, BATCH * 300, 0.002, true);
        inBatch = 0;
      }
      cb(null, res);
    },
  };
  const def = definition('/etcdserverpb.KV/Put');
  const [d, h] = mode === 'unwrapped' ? [def, impl] : instrumentService(def, impl as unknown as grpc.UntypedServiceImplementation, (t, s, m) => metrics.grpcMethod(t, s, m));
  const m = (d as unknown as Record<string, { requestDeserialize(b: Buffer): Buffer; responseSerialize(x: Buffer): Buffer }>).Put!;
  const handler = (h as unknown as Record<string, (call: object, cb: (err: unknown, v: Buffer) => void) => void>).Put!;
  const call = {};
  let sink = 0;
  const done = (_err: unknown, v: Buffer): void => { sink += m.responseSerialize(v).length; };
  return {
    metrics,
    run: (n) => {
      for (let i = 0; i < n; i++) {
        m.requestDeserialize(req);
        handler(call, done);
      }
      if (sink < 0) console.log(sink);
    },
  };
}

function nsPerPut(mode: MetricsMode | 'unwrapped'): number {
  const s = setup(mode);
  s.run(N / 10); // warm up (JIT)
  const t = process.cpuUsage();
  s.run(N);
  const d = process.cpuUsage(t);
  return ((d.user + d.system) * 1000) / N;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: Array<[string, number]> = [];
const per: Record<string, number[]> = { unwrapped: [], basic: [], extensive: [] };
for (let r = 0; r < ROUNDS; r++) for (const mode of ['unwrapped', 'basic', 'extensive'] as const) per[mode]!.push(nsPerPut(mode));
for (const [k, v] of Object.entries(per)) rows.push([`CPU ns per put, ${k === 'unwrapped' ? 'metrics off (handler unwrapped)' : `metrics ${k}`}`, median(v)]);

// One scrape after traffic: every family rendered (default collectors included).
const scraped = setup('extensive');
scraped.run(10_000);
await scraped.metrics.render();
const SCRAPES = 50;
const t = process.cpuUsage();
let bytes = 0;
for (let i = 0; i < SCRAPES; i++) bytes += (await scraped.metrics.render()).body.length;
const d = process.cpuUsage(t);
rows.push(['CPU us per scrape of /metrics', (d.user + d.system) / SCRAPES]);
rows.push(['bytes per scrape', bytes / SCRAPES]);

console.log(`metrics cost in-process: ${N} puts per round, ${ROUNDS} rounds (medians), batches of ${BATCH}`);
for (const [k, v] of rows) console.log(`  ${k.padEnd(52)} ${v.toFixed(1)}`);
console.log(`  ${'added by extensive metrics, ns per put'.padEnd(52)} ${(median(per.extensive!) - median(per.unwrapped!)).toFixed(1)}`);
