import parsePrometheusTextFormat from 'parse-prometheus-text-format';

/** One scrape, parsed: families by name, and sample values by `name{label="v",...}` (labels sorted). */
export interface Scrape {
  text: string;
  types: Map<string, string>;
  /** A sample's value: a counter/gauge by name and labels, or a histogram's `_count`/`_sum`/`_bucket` (with le). */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Every sample of a family (histograms: their _count samples). */
  samples(name: string): Array<{ labels: Record<string, string>; value: number }>;
}

function key(name: string, labels: Record<string, string> = {}): string {
  const l = Object.keys(labels).sort().map((k) => `${k}="${labels[k]}"`).join(',');
  return `${name}{${l}}`;
}

export function parseScrape(text: string): Scrape {
  const values = new Map<string, number>();
  const byFamily = new Map<string, Array<{ labels: Record<string, string>; value: number }>>();
  const types = new Map<string, string>();
  for (const f of parsePrometheusTextFormat(text)) {
    types.set(f.name, f.type);
    const list: Array<{ labels: Record<string, string>; value: number }> = [];
    for (const m of f.metrics) {
      const labels = m.labels ?? {};
      if (f.type === 'HISTOGRAM') {
        // The parser folds every labelled series of a histogram into one: read those lines here.
        for (const line of histogramLines(text, f.name)) {
          values.set(key(line.name, line.labels), line.value);
          if (line.name === `${f.name}_count`) list.push({ labels: line.labels, value: line.value });
        }
        break;
      } else {
        values.set(key(f.name, labels), Number(m.value));
        list.push({ labels, value: Number(m.value) });
      }
    }
    byFamily.set(f.name, list);
  }
  return {
    text,
    types,
    value: (name, labels) => values.get(key(name, labels)),
    samples: (name) => byFamily.get(name) ?? [],
  };
}

/** The _bucket, _sum and _count sample lines of histogram `name` (labels without escapes, as pgetcd writes them). */
function histogramLines(text: string, name: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  const re = new RegExp(`^(${name}_(?:bucket|sum|count))(?:\\{([^}]*)\\})? (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) {
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

export async function scrape(base: string): Promise<Scrape> {
  const res = await fetch(`${base}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  return parseScrape(await res.text());
}

/** go-grpc-prometheus labels of an etcd method. */
export function grpcLabels(service: string, method: string, type = 'unary'): Record<string, string> {
  return { grpc_type: type, grpc_service: `etcdserverpb.${service}`, grpc_method: method };
}
