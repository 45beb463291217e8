import type { FastifyInstance, FastifyReply } from 'fastify';
import { onlyGet } from './methods.ts';
import type { Check, HealthSource } from './types.ts';

/**
 * /health exactly as etcd answers it ({"health":"true","reason":""}, 503 with "false" and a
 * reason), and /livez, /readyz in the Kubernetes style etcd 3.5 also uses ("ok", or one
 * "[-]check failed: reason" line per failed check and 503; ?verbose lists every check).
 */
export async function healthPlugin(app: FastifyInstance, opts: { health: HealthSource }): Promise<void> {
  app.get('/health', async (_req, reply) => {
    const h = await opts.health.health();
    return reply.code(h.ok ? 200 : 503).type('application/json').send(JSON.stringify({ health: h.ok ? 'true' : 'false', reason: h.reason }));
  });
  app.get('/livez', async (req, reply) => probe(reply, 'livez', opts.health.live(), verbose(req.query)));
  app.get('/readyz', async (req, reply) => probe(reply, 'readyz', await opts.health.ready(), verbose(req.query)));
  for (const url of ['/health', '/livez', '/readyz']) onlyGet(app, url);
}

function verbose(query: unknown): boolean {
  return typeof query === 'object' && query !== null && 'verbose' in query;
}

function probe(reply: FastifyReply, what: string, checks: Check[], verbose: boolean): FastifyReply {
  const failed = checks.filter((c) => !c.ok);
  const lines = (verbose ? checks : failed).map((c) => (c.ok ? `[+]${c.name} ok` : `[-]${c.name} failed: ${c.reason ?? 'failed'}`));
  lines.push(failed.length === 0 ? 'ok' : `${what} check failed`);
  return reply.code(failed.length === 0 ? 200 : 503).type('text/plain; charset=utf-8').send(`${lines.join('\n')}\n`);
}
