import http from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';
import { healthPlugin } from './health.ts';
import { metricsPlugin } from './metrics.ts';
import type { HealthSource, MetricsSource } from './types.ts';
import { versionPlugin } from './version.ts';

export type { Check, HealthReport, HealthSource, MetricsSource } from './types.ts';

export interface HttpDeps {
  log: Logger;
  health: HealthSource;
  /** Undefined with --metrics=off: /metrics is then 404. */
  metrics?: MetricsSource;
  etcdVersion: string;
}

/** A request handler any node http server can call (the metrics listener, the client port). */
export type HttpHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export interface HttpApp {
  fastify: FastifyInstance;
  /** Serves one request. Mount it on any http.Server: http.createServer(app.handle). */
  handle: HttpHandler;
  close(): Promise<void>;
}

/**
 * The HTTP side of pgetcd: /metrics, /health, /livez, /readyz, /version, one plugin each.
 * Fastify owns no listener here (serverFactory hands it a server it never listens on): the
 * metrics listener (src/http/listen.ts) and the client port's HTTP/1.1 side both call `handle`.
 */
export async function buildHttpApp(deps: HttpDeps): Promise<HttpApp> {
  let handler: HttpHandler | undefined;
  const fastify = Fastify({
    loggerInstance: deps.log.child({ mod: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    serverFactory: (h) => {
      handler = h;
      return http.createServer(h);
    },
  });
  await fastify.register(healthPlugin, { health: deps.health });
  await fastify.register(versionPlugin, { etcdVersion: deps.etcdVersion });
  if (deps.metrics) await fastify.register(metricsPlugin, { metrics: deps.metrics });
  await fastify.ready();
  if (!handler) throw new Error('fastify did not call serverFactory');
  return { fastify, handle: handler, close: () => fastify.close() };
}
