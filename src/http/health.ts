import type { FastifyInstance, FastifyReply } from 'fastify';
import { onlyGet } from './methods.ts';
import type { Check, HealthSource } from './types.ts';

/**
 * /health exactly as etcd answers it ({"health":"true","reason":""}, 503 with "false" and a
 * reason), and /livez, /readyz in the Kubernetes style etcd 3.5 also uses ("ok", or one
 * "[-]check failed: reason" line per failed check and 503; ?verbose lists every check).
 */
export async function healthPlugin(app: FastifyInstance, opts: { health: HealthSource }): Promise<void> {
  app.get('/health', async (req, reply) => {
    const h = await opts.health.health(excluded(req.query));
    const body = JSON.stringify({ health: h.ok ? 'true' : 'false', reason: h.reason });
    if (h.ok) return reply.code(200).type('application/json').send(body);
    // etcd answers a failure through Go's http.Error: the same JSON as plain text, with a newline.
    return reply.code(503).type('text/plain; charset=utf-8').header('x-content-type-options', 'nosniff').send(`${body}\n`);
  });
  app.get('/livez', async (req, reply) => probe(reply, 'livez', opts.health.live(), verbose(req.query)));
  app.get('/readyz', async (req, reply) => probe(reply, 'readyz', await opts.health.ready(), verbose(req.query)));
  for (const url of ['/health', '/livez', '/readyz']) onlyGet(app, url);
}

/** etcd's ?exclude=NOSPACE (repeatable): alarms /health does not fail on. */
function excluded(query: unknown): Set<string> {
  const x = typeof query === 'object' && query !== null ? (query as Record<string, unknown>).exclude : undefined;
  const list = Array.isArray(x) ? x : [x];
  return new Set(list.filter((v): v is string => typeof v === 'string' && v.length > 0));
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
