import type { FastifyInstance } from 'fastify';
import { etcdBehaviour } from '../etcdversion.ts';
import { onlyGet } from './methods.ts';

/** etcd reports its cluster version as the servers' major.minor with patch 0. */
export function clusterVersion(serverVersion: string): string {
  const m = /^(\d+)\.(\d+)/.exec(serverVersion);
  return m ? `${m[1]}.${m[2]}.0` : serverVersion;
}

/** GET /version as etcd answers it: {"etcdserver":"3.5.17","etcdcluster":"3.5.0"}. */
export async function versionPlugin(app: FastifyInstance, opts: { etcdVersion: string }): Promise<void> {
  // etcd 3.6 adds the storage (data schema) version.
  const storage = etcdBehaviour(opts.etcdVersion).v36Fields ? { storage: '3.6.0' } : {};
  const body = JSON.stringify({ etcdserver: opts.etcdVersion, etcdcluster: clusterVersion(opts.etcdVersion), ...storage });
  app.get('/version', async (_req, reply) => reply.type('application/json').send(body));
  onlyGet(app, '/version');
}
