import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { rawClients, type Raw } from '../helpers/raw.ts';
import { freePort, startServer, type TestServer } from '../helpers/server.ts';
import { waitFor } from '../helpers/wait.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const hasPrometheus = spawnSync('prometheus', ['--version']).status === 0;

interface QueryResult { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }

describe('a real Prometheus scrapes pgetcd with the shipped config', { skip: !hasPrometheus && 'prometheus not installed' }, () => {
  let srv: TestServer;
  let raw: Raw;
  let prom: ChildProcess | undefined;
  let dir: string;
  let api: string;
  let log = '';

  before(async () => {
    const metricsPort = await freePort();
    srv = await startServer({ listenMetricsUrls: [`http://127.0.0.1:${metricsPort}`] });
    raw = rawClients(srv.endpoint);
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgetcd-prom-'));
    // The shipped config and rules, pointed at this pgetcd and scraping every second.
    const cfg = YAML.parse(await fs.readFile(path.join(ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8')) as {
      global: Record<string, string>; scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }>;
    };
    cfg.global.scrape_interval = '1s';
    cfg.global.evaluation_interval = '1s';
    cfg.scrape_configs[0]!.static_configs = [{ targets: [`127.0.0.1:${metricsPort}`] }];
    await fs.writeFile(path.join(dir, 'prometheus.yml'), YAML.stringify(cfg));
    await fs.copyFile(path.join(ROOT, 'deploy', 'prometheus', 'alerts.yml'), path.join(dir, 'alerts.yml'));
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    prom = spawn('prometheus', [
      `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    prom.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
    await waitFor('Prometheus ready', async () => {
      const r = await fetch(`${api}/-/ready`).catch(() => undefined);
      return r?.status === 200 ? true : undefined;
    }, 60_000, 200).catch((err: unknown) => { throw new Error(`${(err as Error).message}\n${log}`); });
  });

  after(async () => {
    raw?.close();
    if (prom && prom.exitCode === null) {
      prom.kill('SIGTERM');
      await new Promise((r) => prom!.once('exit', r));
    }
    await srv?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  const query = async (q: string): Promise<QueryResult['data']['result']> => {
    const r = (await (await fetch(`${api}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as QueryResult;
    assert.equal(r.status, 'success');
    return r.data.result;
  };

  it('finds etcd_server_has_leader == 1 and non-zero grpc_server_handled_total, and loads the alerting rules', async () => {
    for (let i = 0; i < 10; i++) await raw.call('KV', 'Put', { key: Buffer.from(`prom/${i}`), value: Buffer.from('v') });
    const leader = await waitFor('etcd_server_has_leader == 1 in Prometheus', async () => {
      const r = await query('etcd_server_has_leader == 1');
      return r.length > 0 ? r : undefined;
    }, 60_000, 500);
    assert.equal(leader[0]!.metric.job, 'pgetcd');
    const handled = await waitFor('Put calls in Prometheus', async () => {
      const r = await query('sum(grpc_server_handled_total{grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="OK"}) > 0');
      return r.length > 0 ? r : undefined;
    }, 60_000, 500);
    assert.ok(Number(handled[0]!.value[1]) >= 10);
    const up = await query('up{job="pgetcd"}');
    assert.equal(up[0]?.value[1], '1');
    const rules = (await (await fetch(`${api}/api/v1/rules`)).json()) as { data: { groups: Array<{ name: string; rules: Array<{ name: string; health: string }> }> } };
    const names = rules.data.groups.map((g) => g.name).sort();
    assert.deepEqual(names, ['etcd', 'pgetcd']);
    await waitFor('every rule evaluated without error', async () => {
      const r = (await (await fetch(`${api}/api/v1/rules`)).json()) as typeof rules;
      const all = r.data.groups.flatMap((g) => g.rules);
      return all.every((x) => x.health === 'ok') ? true : undefined;
    }, 60_000, 500);
    // Nothing fires on a healthy pgetcd.
    const firing = await query('ALERTS{alertstate="firing"}');
    assert.deepEqual(firing.map((a) => a.metric.alertname), []);
  });
});
