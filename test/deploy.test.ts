import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { parseConfig } from '../src/config.ts';
import { MALLOC_TUNABLES } from '../src/alloc.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const K8S = path.join(ROOT, 'deploy', 'kubernetes');

type Doc = Record<string, any>;

function docs(file: string): Doc[] {
  return YAML.parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => {
    assert.equal(d.errors.length, 0, `${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as Doc;
  }).filter((d) => d !== null);
}

function containers(d: Doc): Doc[] {
  return (d.kind === 'Pod' ? d.spec.containers : d.spec.template.spec.containers) as Doc[];
}

/** A pgetcd container's args must be settings pgetcd accepts (file paths aside). */
function checkPgetcdArgs(c: Doc): void {
  const args = (c.args as string[]).map((a) => a.replace(/^(--(?:cert|key|trusted-ca|datastore-cafile|datastore-password)[a-z-]*)=.*$/, '$1='));
  // File paths exist only on the node: the flags are checked, TLS needs real files so https:// reads as http:// here.
  const settingsOnly = args.filter((a) => !a.endsWith('=')).map((a) => a.replace('https://', 'http://'));
  parseConfig(settingsOnly, {});
}

describe('deployment recipes', () => {
  it('every Kubernetes manifest parses, and each object has apiVersion, kind and metadata.name', () => {
    // k3s-config.yaml is k3s's own config file, not a Kubernetes object.
    const files = fs.readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'k3s-config.yaml');
    assert.ok(files.length >= 3);
    for (const f of files) {
      for (const d of docs(path.join(K8S, f))) {
        assert.ok(d.apiVersion && d.kind, `${f}: apiVersion and kind`);
        if (d.kind !== 'ClusterConfiguration') assert.ok(d.metadata?.name, `${f}: metadata.name`);
      }
    }
  });

  it('the kube-apiserver sidecar: apiserver uses 127.0.0.1:2379, pgetcd has probes on /livez and /readyz and TLS to PostgreSQL', () => {
    const [pod] = docs(path.join(K8S, 'kube-apiserver-sidecar.yaml'));
    const [pg, api] = [containers(pod!).find((c) => c.name === 'pgetcd')!, containers(pod!).find((c) => c.name === 'kube-apiserver')!];
    assert.ok((api.command as string[]).includes('--etcd-servers=http://127.0.0.1:2379'));
    assert.equal(pg.readinessProbe.httpGet.path, '/readyz');
    assert.equal(pg.livenessProbe.httpGet.path, '/livez');
    assert.ok((pg.args as string[]).some((a) => a.includes('sslmode=verify-full')));
    checkPgetcdArgs(pg);
  });

  it('the Deployment has several replicas, a Service, a password from a Secret and probes', () => {
    const all = docs(path.join(K8S, 'deployment.yaml'));
    const dep = all.find((d) => d.kind === 'Deployment')!;
    assert.ok(dep.spec.replicas >= 2);
    assert.ok(all.some((d) => d.kind === 'Service' && d.spec.selector.app === 'pgetcd'));
    const c = containers(dep)[0]!;
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.ok(dep.spec.template.spec.volumes.some((v: Doc) => v.secret?.secretName === 'pgetcd-db'));
    checkPgetcdArgs(c);
  });

  it('kubeadm etcd.external and k3s datastore settings point at pgetcd', () => {
    const [kubeadm] = docs(path.join(K8S, 'kubeadm-external-etcd.yaml'));
    assert.ok(kubeadm!.etcd.external.endpoints.length > 0);
    const [k3s] = docs(path.join(K8S, 'k3s-config.yaml'));
    assert.match(k3s!['datastore-endpoint'], /^https:\/\//);
  });

  it('Dockerfile: multi-stage, production dependencies, non-root, HEALTHCHECK on /health, ports 2379 and 2381', () => {
    const d = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    assert.ok((d.match(/^FROM /gm) ?? []).length >= 2);
    assert.match(d, /npm ci --omit=dev/);
    assert.match(d, /^USER node$/m);
    assert.match(d, /^HEALTHCHECK [\s\S]*\/health/m);
    assert.match(d, /^EXPOSE 2379 2381$/m);
  });

  it('docker compose config accepts docker-compose.yml', { skip: spawnSync('docker', ['compose', 'version']).status === 0 ? false : 'docker compose is not installed' }, () => {
    const r = spawnSync('docker', ['compose', '-f', path.join(ROOT, 'docker-compose.yml'), 'config', '-q'], { encoding: 'utf8', cwd: ROOT });
    assert.equal(r.status, 0, r.stderr);
  });

  it('docker-compose (v1, Debian\'s) config accepts docker-compose.yml', { skip: spawnSync('docker-compose', ['version']).status === 0 ? false : 'docker-compose is not installed' }, () => {
    const r = spawnSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), 'config', '-q'], { encoding: 'utf8', cwd: ROOT });
    assert.equal(r.status, 0, r.stderr);
  });

  it('compose: Prometheus scrapes pgetcd and Grafana gets the datasource and the dashboard from files in the repo', () => {
    const [compose] = docs(path.join(ROOT, 'docker-compose.yml'));
    const svc = compose!.services as Record<string, Doc>;
    // Prometheus shares pgetcd's network namespace: the scrape target 127.0.0.1:2381 is pgetcd's metrics port.
    assert.equal(svc.prometheus!.network_mode, 'service:pgetcd');
    assert.ok((svc.pgetcd!.command as string[]).join(' ').includes('--listen-metrics-urls http://0.0.0.0:2381'));
    const mounts = new Map((svc.grafana!.volumes as string[]).map((v) => {
      const [src, dst] = v.split(':');
      return [dst!, path.join(ROOT, src!)];
    }));
    for (const src of mounts.values()) assert.ok(fs.existsSync(src), `${src} is mounted and must exist`);
    const provisioning = mounts.get('/etc/grafana/provisioning')!;
    const [ds] = docs(path.join(provisioning, 'datasources', 'prometheus.yml'));
    const source = ds!.datasources[0] as Doc;
    assert.equal(source.type, 'prometheus');
    // Prometheus listens on 9090 inside the pgetcd service's namespace.
    assert.equal(source.url, 'http://pgetcd:9090');
    assert.ok((svc.pgetcd!.ports as string[]).includes('9090:9090'));
    const [boards] = docs(path.join(provisioning, 'dashboards', 'pgetcd.yml'));
    const dir = boards!.providers[0].options.path as string;
    const dashboard = [...mounts.entries()].find(([dst]) => path.dirname(dst) === dir);
    assert.ok(dashboard, `a dashboard JSON is mounted under ${dir}`);
    const json = JSON.parse(fs.readFileSync(dashboard[1], 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
    const exprs = json.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr).join('\n');
    // What the issue asks the dashboard to show.
    for (const family of ['grpc_server_handled_total', 'grpc_server_handling_seconds_bucket', 'pgetcd_write_batch_requests_bucket',
      'etcd_disk_backend_commit_duration_seconds_bucket', 'etcd_debugging_mvcc_watch_stream_total', 'pgetcd_watch_notify_delivery_lag_seconds_bucket',
      'pgetcd_kv_log_partition_bytes', 'etcd_debugging_mvcc_current_revision', 'etcd_debugging_mvcc_compact_revision', 'pgetcd_compaction_rows_removed_total']) {
      assert.ok(exprs.includes(family), `the dashboard shows ${family}`);
    }
    assert.equal(svc.grafana!.environment.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH, [...mounts.keys()].find((k) => k.endsWith('.json')));
  });
  it('every launcher sets the allocator setting of src/alloc.ts', () => {
    const bin = fs.readFileSync(path.join(ROOT, 'bin', 'pgetcd.js'), 'utf8').split('\n')[0];
    assert.equal(bin, `#!/usr/bin/env -S GLIBC_TUNABLES=${MALLOC_TUNABLES} node`);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.start, `GLIBC_TUNABLES=${MALLOC_TUNABLES} node dist/main.js`);
    assert.match(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'), new RegExp(`^ENV GLIBC_TUNABLES=${MALLOC_TUNABLES}$`, 'm'));
    // The shebang runs: the setting reaches the process (env -S is coreutils' and BSD's).
    const r = spawnSync(path.join(ROOT, 'bin', 'pgetcd.js'), ['--help'], { encoding: 'utf8', env: { ...process.env, GLIBC_TUNABLES: '' } });
    assert.equal(r.status, 0, r.stderr);
  });
});
