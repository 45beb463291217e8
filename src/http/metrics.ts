import type { FastifyInstance } from 'fastify';
import { onlyGet } from './methods.ts';
import type { MetricsSource } from './types.ts';

/** GET /metrics: Prometheus text format, or OpenMetrics when the scraper's Accept asks for it. */
export async function metricsPlugin(app: FastifyInstance, opts: { metrics: MetricsSource }): Promise<void> {
  app.get('/metrics', async (req, reply) => {
    const out = await opts.metrics.render(req.headers.accept);
    return reply.type(out.contentType).send(out.body);
  });
  onlyGet(app, '/metrics');
}
