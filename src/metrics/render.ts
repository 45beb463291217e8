import { Registry, type Metric, type OpenMetricsContentType } from 'prom-client';

interface Registered {
  name: string;
  type: string;
  get(): Promise<object>;
}

export interface Exposition {
  contentType: string;
  body: string;
}

/** True when a scraper's Accept header asks for OpenMetrics (Prometheus does, given the choice). */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('application/openmetrics-text');
}

/**
 * An OpenMetrics view of a text-format registry. OpenMetrics names a counter family without
 * `_total` and prom-client renames the metrics it formats that way, so the view holds
 * wrappers: the text registry's metrics keep their names.
 */
export function openMetricsView(text: Registry): Registry<OpenMetricsContentType> {
  const om = new Registry<OpenMetricsContentType>();
  om.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  // prom-client's typings describe registered metrics only loosely: this is their runtime shape.
  for (const m of text.getMetricsAsArray() as unknown as Registered[]) {
    const name = m.type === 'counter' ? m.name.replace(/_total$/, '') : m.name;
    const view = Object.create(m) as Registered;
    Object.defineProperty(view, 'name', { value: name, writable: true });
    Object.defineProperty(view, 'get', { value: async () => ({ ...(await m.get()), name }) });
    om.registerMetric(view as unknown as Metric);
  }
  return om;
}
