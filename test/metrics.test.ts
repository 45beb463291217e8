import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { sqlFor } from './helpers/db.ts';
import { grpcLabels, parseScrape, scrape, type Scrape } from './helpers/prom.ts';
import { expectGrpcError, rawClients, type Raw } from './helpers/raw.ts';
import { freePort, startServer, type TestServer } from './helpers/server.ts';
import { RawWatch } from './helpers/watch.ts';
import { waitFor } from './helpers/wait.ts';

function hasPromtool(): boolean {
  return spawnSync('promtool', ['--version']).status === 0;
}

/** Families whose names promtool's linter dislikes, kept because etcd (or prom-client's Node defaults) name them so. */
const ETCD_NAMED = new Set([
  'etcd_debugging_mvcc_keys_total', 'etcd_debugging_mvcc_slow_watcher_total', 'etcd_debugging_mvcc_watch_stream_total',
  'etcd_debugging_mvcc_watcher_total', 'etcd_server_proposals_applied_total', 'etcd_server_proposals_committed_total',
  'nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total',
]);
/** Counters etcd names without the "_total" suffix (etcdhttp/health.go). */
const ETCD_COUNTERS_WITHOUT_TOTAL = new Set(['etcd_server_health_success', 'etcd_server_health_failures']);

describe('/metrics after real traffic', () => {
  let srv: TestServer;
  let raw: Raw;
  let base: string;

  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    srv = await startServer({ listenMetricsUrls: [base] });
    raw = rawClients(srv.endpoint);
  });

  after(async () => {
    raw.close();
    await srv.stop();
  });

  const delta = (a: Scrape, b: Scrape, name: string, labels?: Record<string, string>): number =>
    (b.value(name, labels) ?? 0) - (a.value(name, labels) ?? 0);

  it('counts puts, a txn, a watch, a lease and a compaction with etcd names, labels and amounts', async () => {
    const s0 = await scrape(base);
    // Every method shows from the start with zeros (go-grpc-prometheus InitializeMetrics).
    assert.equal(s0.value('grpc_server_handled_total', { ...grpcLabels('KV', 'Compact'), grpc_code: 'OK' }), 0);
    assert.equal(s0.value('grpc_server_started_total', grpcLabels('Watch', 'Watch', 'bidi_stream')), 0);
    assert.equal(s0.types.get('grpc_server_handling_seconds'), 'HISTOGRAM');

    const watch = new RawWatch(raw);
    const created = await watch.watch({ key: Buffer.from('m/'), range_end: Buffer.from('m0') });
    let rev = 0;
    for (let i = 0; i < 3; i++) {
      const r = await raw.call('KV', 'Put', { key: Buffer.from('m/k'), value: Buffer.from(`v${i}`) });
      rev = Number(r.header.revision);
    }
    await watch.events(created.watch_id, 3);
    // Physical compaction at the third put removes the two older versions of m/k.
    await raw.call('KV', 'Compact', { revision: String(rev), physical: true });
    await raw.call('KV', 'Txn', {
      compare: [{ key: Buffer.from('m/k'), target: 'VERSION', result: 'EQUAL', version: '3' }],
      success: [{ request_put: { key: Buffer.from('m/t'), value: Buffer.from('x') } }, { request_range: { key: Buffer.from('m/k') } }],
      failure: [],
    });
    await raw.call('KV', 'Range', { key: Buffer.from('m/k') });
    await expectGrpcError(raw.call('KV', 'Range', { key: Buffer.alloc(0) }), grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
    const lease = await raw.call('Lease', 'LeaseGrant', { TTL: '60', ID: '0' });
    const ka = (raw.Lease as unknown as { LeaseKeepAlive(): grpc.ClientDuplexStream<object, { TTL: string }> }).LeaseKeepAlive();
    ka.write({ ID: lease.ID });
    await new Promise<void>((resolve) => ka.once('data', () => resolve()));
    ka.end();
    await new Promise<void>((resolve) => ka.on('status', () => resolve()));
    await raw.call('Lease', 'LeaseRevoke', { ID: lease.ID });
    const last = await raw.call('KV', 'Range', { key: Buffer.from('m/t') });

    const s1 = await scrape(base);
    const ok = (service: string, method: string, type = 'unary') => ({ ...grpcLabels(service, method, type), grpc_code: 'OK' });
    assert.equal(delta(s0, s1, 'grpc_server_started_total', grpcLabels('KV', 'Put')), 3);
    assert.equal(delta(s0, s1, 'grpc_server_handled_total', ok('KV', 'Put')), 3);
    assert.equal(delta(s0, s1, 'grpc_server_handled_total', ok('KV', 'Txn')), 1);
    assert.equal(delta(s0, s1, 'grpc_server_handled_total', ok('KV', 'Range')), 2);
    assert.equal(delta(s0, s1, 'grpc_server_handled_total', { ...grpcLabels('KV', 'Range'), grpc_code: 'InvalidArgument' }), 1);
    assert.equal(delta(s0, s1, 'grpc_server_handled_total', ok('KV', 'Compact')), 1);
    assert.equal(delta(s0, s1, 'grpc_server_handled_total', ok('Lease', 'LeaseGrant')), 1);
    assert.equal(delta(s0, s1, 'grpc_server_handled_total', ok('Lease', 'LeaseRevoke')), 1);
    assert.equal(delta(s0, s1, 'grpc_server_handled_total', ok('Lease', 'LeaseKeepAlive', 'bidi_stream')), 1);
    assert.equal(delta(s0, s1, 'grpc_server_msg_received_total', grpcLabels('Lease', 'LeaseKeepAlive', 'bidi_stream')), 1);
    assert.equal(delta(s0, s1, 'grpc_server_msg_sent_total', grpcLabels('Lease', 'LeaseKeepAlive', 'bidi_stream')), 1);
    assert.equal(delta(s0, s1, 'grpc_server_handling_seconds_count', grpcLabels('KV', 'Put')), 3);
    assert.equal(delta(s0, s1, 'grpc_server_handling_seconds_bucket', { ...grpcLabels('KV', 'Put'), le: '+Inf' }), 3);
    // The watch stream is open: started, not handled; its create request and 1 + 3 responses counted.
    assert.equal(delta(s0, s1, 'grpc_server_started_total', grpcLabels('Watch', 'Watch', 'bidi_stream')), 1);
    assert.equal(delta(s0, s1, 'grpc_server_msg_received_total', grpcLabels('Watch', 'Watch', 'bidi_stream')), 1);
    assert.ok(delta(s0, s1, 'grpc_server_msg_sent_total', grpcLabels('Watch', 'Watch', 'bidi_stream')) >= 2);
    assert.equal(s1.value('etcd_debugging_mvcc_watch_stream_total'), 1);
    assert.equal(s1.value('etcd_debugging_mvcc_watcher_total'), 1);
    assert.equal(s1.value('etcd_debugging_mvcc_slow_watcher_total'), 0);
    assert.ok(delta(s0, s1, 'etcd_network_client_grpc_received_bytes_total') > 0);
    assert.ok(delta(s0, s1, 'etcd_network_client_grpc_sent_bytes_total') > 0);

    // mvcc: 3 puts + the txn's put; 2 ranges + the txn's range; one txn (more than one op).
    assert.equal(delta(s0, s1, 'etcd_mvcc_put_total'), 4);
    assert.equal(delta(s0, s1, 'etcd_mvcc_range_total'), 3);
    assert.equal(delta(s0, s1, 'etcd_mvcc_txn_total'), 1);
    assert.equal(delta(s0, s1, 'etcd_mvcc_delete_total'), 0);
    assert.equal(s1.value('etcd_debugging_mvcc_current_revision'), Number(last.header.revision));
    assert.equal(s1.value('etcd_debugging_mvcc_compact_revision'), rev);
    assert.equal(delta(s0, s1, 'pgetcd_compaction_rows_removed_total'), 2);
    assert.equal(delta(s0, s1, 'pgetcd_compaction_duration_seconds_count'), 1);

    // Leases.
    assert.equal(delta(s0, s1, 'etcd_debugging_lease_granted_total'), 1);
    assert.equal(delta(s0, s1, 'etcd_debugging_lease_revoked_total'), 1);
    assert.equal(delta(s0, s1, 'etcd_debugging_lease_renewed_total'), 1);

    // Writes: 3 puts, the compaction, the txn, the grant and the revoke are 7 committed proposals.
    assert.equal(delta(s0, s1, 'etcd_server_proposals_committed_total'), 7);
    assert.equal(delta(s0, s1, 'etcd_server_proposals_applied_total'), 7);
    assert.equal(delta(s0, s1, 'pgetcd_write_batch_requests_sum'), 7);
    assert.equal(delta(s0, s1, 'etcd_server_proposals_failed_total'), 0);
    assert.equal(s1.value('etcd_server_proposals_pending'), 0);
    const batches = delta(s0, s1, 'pgetcd_write_batch_requests_count');
    assert.ok(batches >= 1 && batches <= 7, `batches ${batches}`);
    assert.equal(delta(s0, s1, 'etcd_disk_backend_commit_duration_seconds_count'), batches);
    const paths = delta(s0, s1, 'pgetcd_write_commit_duration_seconds_count', { path: 'one_round_trip' })
      + delta(s0, s1, 'pgetcd_write_commit_duration_seconds_count', { path: 'read_then_write' });
    assert.equal(paths, batches);

    assert.equal(s1.value('etcd_server_has_leader'), 1);
    assert.equal(s1.value('etcd_server_is_leader'), 1);
    assert.equal(s1.value('etcd_server_version', { server_version: '3.6.11' }), 1);
    assert.equal(s1.value('etcd_server_quota_backend_bytes'), 2 * 1024 ** 3);
    assert.ok((s1.value('process_resident_memory_bytes') ?? 0) > 0);
    watch.close();
  });

  it('lease expiry: counted, and its lag measured from the lease\'s expiry time to its revocation', async () => {
    const OVERDUE_S = 10;
    const s0 = await scrape(base);
    const t0 = performance.now();
    const lease = await raw.call('Lease', 'LeaseGrant', { TTL: '60', ID: '0' });
    await raw.call('KV', 'Put', { key: Buffer.from('m/leased'), value: Buffer.from('x'), lease: lease.ID });
    // Straight in the table, as if the lease had expired OVERDUE_S ago: the expiry loop (which
    // looks at least once a second) then revokes it, at least OVERDUE_S after that expiry.
    const sql = sqlFor(srv.databaseUrl);
    try {
      await sql`UPDATE leases SET expires_at = now() - ${OVERDUE_S} * interval '1 second' WHERE id = ${lease.ID}::int8`;
    } finally {
      await sql.end();
    }
    const s1 = await waitFor('the lease expired', async () => {
      const s = await scrape(base);
      return delta(s0, s, 'pgetcd_lease_expiry_lag_seconds_count') >= 1 ? s : undefined;
    });
    const elapsed = (performance.now() - t0) / 1000;
    assert.equal((await raw.call('KV', 'Range', { key: Buffer.from('m/leased') })).count, '0');
    assert.equal(delta(s0, s1, 'pgetcd_lease_expiry_lag_seconds_count'), 1);
    assert.equal(delta(s0, s1, 'etcd_debugging_server_lease_expired_total'), 1);
    assert.equal(delta(s0, s1, 'etcd_debugging_lease_revoked_total'), 1);
    const lag = delta(s0, s1, 'pgetcd_lease_expiry_lag_seconds_sum');
    // At least the time it was overdue when the loop found it. At most: overdue at the claim
    // (OVERDUE_S plus at most the test's time) plus claim-to-revoked (at most the test's time).
    assert.ok(lag >= OVERDUE_S && lag <= OVERDUE_S + 2 * elapsed, `lag ${lag} s, test took ${elapsed} s`);
    assert.equal(delta(s0, s1, 'pgetcd_lease_expiry_lag_seconds_bucket', { le: '0.01' }), 0);
    assert.equal(delta(s0, s1, 'pgetcd_lease_expiry_lag_seconds_bucket', { le: '+Inf' }), 1);
  });

  it('no family carries a key, lease or client in a label', async () => {
    const s = await scrape(base);
    const allowed = new Set(['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code', 'le', 'server_version', 'path', 'partition', 'state',
      // prom-client's Node defaults
      'version', 'major', 'minor', 'patch', 'kind', 'space', 'type']);
    for (const name of s.types.keys()) {
      for (const sample of s.samples(name)) {
        for (const l of Object.keys(sample.labels)) assert.ok(allowed.has(l), `${name} has label ${l}`);
      }
    }
  });

  it('database sizes and kv_log partitions come from the background sample', async () => {
    const s = await waitFor('a database sample', async () => {
      const x = await scrape(base);
      return (x.value('etcd_mvcc_db_total_size_in_bytes') ?? 0) > 0 ? x : undefined;
    });
    assert.ok(s.value('etcd_mvcc_db_total_size_in_use_in_bytes')! <= s.value('etcd_mvcc_db_total_size_in_bytes')!);
    const parts = s.samples('pgetcd_kv_log_partition_bytes');
    assert.ok(parts.some((p) => p.labels.partition === 'kv_log_default'), JSON.stringify(parts));
    assert.ok(parts.every((p) => p.value > 0));
  });

  it('serves OpenMetrics when the scraper asks for it', async () => {
    const res = await fetch(`${base}/metrics`, { headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/openmetrics-text; version=1\.0\.0/);
    const body = await res.text();
    assert.ok(body.endsWith('# EOF\n'));
    assert.match(body, /^# TYPE grpc_server_handled counter$/m);
    assert.match(body, /^grpc_server_handled_total\{grpc_type="unary",grpc_service="etcdserverpb\.KV",grpc_method="Put",grpc_code="OK"\} \d+$/m);
    // The text format, asked for afterwards, still names counters with _total.
    const text = parseScrape(await (await fetch(`${base}/metrics`)).text());
    assert.equal(text.types.get('grpc_server_handled_total'), 'COUNTER');
  });

  it('promtool check metrics finds nothing but the names etcd itself uses', { skip: !hasPromtool() && 'promtool not installed' }, async () => {
    const body = await (await fetch(`${base}/metrics`)).text();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    const problems = `${r.stdout}${r.stderr}`.split('\n').filter(Boolean);
    assert.ok(r.status === 0 || r.status === 3, `promtool failed (${r.status}): ${problems.join('\n')}`);
    for (const p of problems) {
      const name = p.split(' ')[0]!;
      assert.ok((ETCD_NAMED.has(name) && p.includes('non-counter metrics should not have "_total" suffix'))
        || (ETCD_COUNTERS_WITHOUT_TOTAL.has(name) && p.includes('counter metrics should have "_total" suffix')), `promtool: ${p}`);
    }
  });

  it('every family the shipped dashboard and alerting rules query is exported', async () => {
    const s = await scrape(base);
    const files = ['deploy/prometheus/grafana-dashboard.json', 'deploy/prometheus/alerts.yml'];
    for (const f of files) {
      const text = fs.readFileSync(f, 'utf8');
      const names = new Set([...text.matchAll(/\b((?:etcd|grpc_server|pgetcd|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!));
      assert.ok(names.size > 10, f);
      for (const n of [...names].filter((x) => !x.endsWith('_'))) {
        const family = s.types.has(n) ? n : n.replace(/_(bucket|sum|count)$/, '');
        assert.ok(s.types.has(family), `${f} queries ${n}, which /metrics does not export`);
      }
    }
  });

  it("every family etcd's own mixin (contrib/mixin) queries is exported, or listed in docs/metrics.md as left out", async () => {
    // The names etcd-io/etcd contrib/mixin's alerts and dashboards query (facts read from its sources).
    const MIXIN = ['etcd_server_has_leader', 'etcd_server_leader_changes_seen_total', 'etcd_server_proposals_failed_total',
      'etcd_server_proposals_committed_total', 'etcd_server_proposals_applied_total', 'etcd_server_proposals_pending',
      'etcd_disk_backend_commit_duration_seconds', 'etcd_mvcc_db_total_size_in_bytes', 'etcd_mvcc_db_total_size_in_use_in_bytes',
      'etcd_server_quota_backend_bytes', 'grpc_server_handled_total', 'grpc_server_started_total', 'grpc_server_handling_seconds',
      'etcd_network_client_grpc_received_bytes_total', 'etcd_network_client_grpc_sent_bytes_total', 'process_resident_memory_bytes'];
    const LEFT_OUT = ['etcd_disk_wal_fsync_duration_seconds', 'etcd_network_peer_sent_bytes_total', 'etcd_network_peer_received_bytes_total',
      'etcd_network_peer_round_trip_time_seconds', 'etcd_network_peer_sent_failures_total'];
    const s = await scrape(base);
    for (const n of MIXIN) assert.ok(s.types.has(n), `etcd's mixin queries ${n}, which /metrics does not export`);
    // Types as etcd registers them (the proposals committed/applied families are gauges there too).
    const types: Record<string, string> = {
      etcd_disk_backend_commit_duration_seconds: 'HISTOGRAM', grpc_server_handling_seconds: 'HISTOGRAM', etcd_server_has_leader: 'GAUGE',
      etcd_server_proposals_committed_total: 'GAUGE', etcd_server_proposals_failed_total: 'COUNTER', etcd_server_quota_backend_bytes: 'GAUGE',
      etcd_network_client_grpc_sent_bytes_total: 'COUNTER',
    };
    for (const [n, t] of Object.entries(types)) assert.equal(s.types.get(n), t, n);
    // etcd's backend commit buckets: ExponentialBuckets(0.001, 2, 14), 1 ms ... 8.192 s.
    const les = [...s.text.matchAll(/^etcd_disk_backend_commit_duration_seconds_bucket\{le="([^"]+)"\}/gm)].map((m) => m[1]);
    assert.deepEqual(les, [...Array.from({ length: 14 }, (_, i) => String(0.001 * 2 ** i)), '+Inf']);
    const doc = fs.readFileSync('docs/metrics.md', 'utf8');
    for (const n of LEFT_OUT) {
      assert.ok(!s.types.has(n), `${n} is not faked`);
      const prefix = n.startsWith('etcd_network_peer_') ? 'etcd_network_peer_' : n;
      assert.ok(doc.includes(prefix), `docs/metrics.md says why ${n} is left out`);
    }
    // The mixin selects job=~".*etcd.*" and keys its cluster variable on etcd_server_has_leader's job label.
    assert.match(fs.readFileSync('deploy/prometheus/prometheus.yml', 'utf8'), /job_name: [a-z_-]*etcd/);
  });

  it('promtool check rules accepts the shipped alerting rules', { skip: !hasPromtool() && 'promtool not installed' }, () => {
    const out = execFileSync('promtool', ['check', 'rules', 'deploy/prometheus/alerts.yml'], { encoding: 'utf8' });
    assert.match(out, /SUCCESS: \d+ rules found/);
  });
});
