import type { FastifyInstance, HTTPMethods } from 'fastify';

const OTHER_METHODS: HTTPMethods[] = ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

/** Other methods on a GET route answer 405 with Allow, as etcd's /health handler does. */
export function onlyGet(app: FastifyInstance, url: string): void {
  app.route({
    method: OTHER_METHODS,
    url,
    handler: async (_req, reply) => reply.code(405).header('allow', 'GET, HEAD').type('text/plain; charset=utf-8').send('Method Not Allowed\n'),
  });
}
