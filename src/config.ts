/**
 * pgetcd's settings: ONE entry per setting in SETTINGS below. Flags, environment variables,
 * the --config-file keys, `--help` and the README's flags table are all produced from it.
 *
 * To add a setting, add one entry:
 *
 *   myThing: setting({
 *     flag: 'my-thing',          // --my-thing; etcd's spelling if etcd has the setting
 *     kind: duration,            // str optStr bool int count duration list urls file choice([...]) (src/config/kinds.ts)
 *     default: 5000,             // in the kind's unit (durations are milliseconds)
 *     help: 'what it does',      // one line, shown in --help and README
 *     etcd: true,                // only if etcd has it: ETCD_MY_THING and etcd's config-file key work too
 *   }),
 *
 * then use `cfg.myThing` (the Config type follows the table) and run `npm run readme-flags`
 * (test/config.test.ts fails until README.md's table matches). PGETCD_MY_THING and the
 * config-file key `my-thing` come for free; `yaml: [...]` nests the key, `aliases` adds other
 * flag names, `secret: true` keeps the value out of errors and --help.
 */
import { bool, choice, count, duration, file, int, list, optStr, pgUrls, signedInt, str, urls } from './config/kinds.ts';
import { readSecureContext, type TlsSettings } from './net/tls.ts';
import { ConfigError, load, setting, type ValuesOf } from './config/load.ts';
import { usage } from './config/docs.ts';
import { etcdBehaviour } from './etcdversion.ts';

export { parseDuration } from './config/kinds.ts';
export { ConfigError } from './config/load.ts';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const LOG_FORMATS = ['auto', 'json', 'text'] as const;
const METRICS_MODES = ['extensive', 'basic', 'off'] as const;
/** etcd's DefaultQuotaBytes: what --quota-backend-bytes 0 means. */
export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
const TLS_VERSIONS = ['TLS1.2', 'TLS1.3'] as const;

export const SETTINGS = {
  name: setting({ flag: 'name', kind: str, default: 'default', etcd: true, help: 'member name' }),
  listenClientUrls: setting({
    flag: 'listen-client-urls', kind: urls, default: ['http://127.0.0.1:2379'], etcd: true,
    help: 'URLs to serve etcd gRPC on, comma separated',
  }),
  advertiseClientUrls: setting({
    flag: 'advertise-client-urls', kind: urls, default: [], etcd: true, defaultText: 'the listen URLs',
    help: 'client URLs reported to clients (MemberList)',
  }),
  certFile: setting({ flag: 'cert-file', kind: file, default: undefined, etcd: true, yaml: ['client-transport-security', 'cert-file'], help: 'TLS certificate for https:// client URLs (reloaded when the file changes)' }),
  keyFile: setting({ flag: 'key-file', kind: file, default: undefined, etcd: true, yaml: ['client-transport-security', 'key-file'], help: 'key of --cert-file' }),
  clientCertAuth: setting({
    flag: 'client-cert-auth', kind: bool, default: false, etcd: true, yaml: ['client-transport-security', 'client-cert-auth'],
    help: 'refuse clients without a certificate signed by --trusted-ca-file (at the TLS handshake)',
  }),
  trustedCaFile: setting({ flag: 'trusted-ca-file', kind: file, default: undefined, etcd: true, yaml: ['client-transport-security', 'trusted-ca-file'], help: 'CA certificate(s) that client certificates must chain to' }),
  cipherSuites: setting({ flag: 'cipher-suites', kind: list, default: [], etcd: true, help: "TLS 1.2 cipher suites, Go's names, comma separated (default: Node's list)" }),
  tlsMinVersion: setting({ flag: 'tls-min-version', kind: choice(TLS_VERSIONS), default: 'TLS1.2', etcd: true, help: 'oldest TLS version accepted' }),
  endpoint: setting({
    flag: 'endpoint', aliases: ['datastore-endpoint'], kind: optStr, default: undefined, env: ['DATABASE_URL'], secret: true,
    help: 'external PostgreSQL as a postgres:// URL (libpq parameters such as sslmode allowed); without it an embedded PostgreSQL runs in --data-dir',
  }),
  readEndpoint: setting({
    flag: 'read-endpoint', kind: pgUrls, default: [], secret: true, repeatable: true,
    help: 'hot standbys of --endpoint as postgres:// URLs (repeatable or comma separated; every host of a multi-host URL is one standby): serializable Ranges, Ranges at a past revision and watch catch-up read there; TLS and password as --endpoint',
  }),
  readMaxLag: setting({
    flag: 'read-max-lag', kind: duration, default: 1000,
    help: 'a standby further behind the primary than this (or unreachable) takes no reads until it catches up',
  }),
  datastoreCafile: setting({
    flag: 'datastore-cafile', kind: file, default: undefined,
    help: "CA certificate(s) that PostgreSQL's certificate must chain to (as the URL's sslrootcert; alone it means sslmode=verify-full)",
  }),
  datastoreCertfile: setting({ flag: 'datastore-certfile', kind: file, default: undefined, help: 'client certificate for TLS to PostgreSQL (as the URL\'s sslcert)' }),
  datastoreKeyfile: setting({ flag: 'datastore-keyfile', kind: file, default: undefined, help: 'key of --datastore-certfile (as the URL\'s sslkey)' }),
  datastorePasswordFile: setting({
    flag: 'datastore-password-file', kind: file, default: undefined,
    help: 'file holding the PostgreSQL password (else the URL\'s, PGPASSWORD, or PGPASSFILE/~/.pgpass)',
  }),
  datastoreWaitTimeout: setting({
    flag: 'datastore-wait-timeout', kind: duration, default: 60_000,
    help: 'how long a start waits for a PostgreSQL that is not up yet, retrying with backoff (0 = one try)',
  }),
  dataDir: setting({ flag: 'data-dir', kind: str, default: './pgetcd-data', etcd: true, help: 'folder of the embedded PostgreSQL' }),
  embeddedPort: setting({ flag: 'embedded-port', kind: int, default: 5432, help: 'embedded PostgreSQL port (names its Unix socket)' }),
  embeddedTcp: setting({ flag: 'embedded-tcp', kind: bool, default: false, help: 'embedded PostgreSQL also listens on 127.0.0.1:port' }),
  migrate: setting({ flag: 'migrate', kind: bool, default: true, help: 'run the database migrations on start (--no-migrate to skip)' }),
  maxRequestBytes: setting({ flag: 'max-request-bytes', kind: int, default: 1.5 * 1024 * 1024, etcd: true, help: 'largest request a client may send' }),
  maxTxnOps: setting({ flag: 'max-txn-ops', kind: int, default: 128, etcd: true, help: 'most operations in one txn' }),
  maxBatch: setting({ flag: 'max-batch', kind: int, default: 512, help: 'most write requests per PostgreSQL transaction' }),
  maxBatchBytes: setting({ flag: 'max-batch-bytes', kind: int, default: 8 * 1024 * 1024, help: 'most request bytes per PostgreSQL transaction' }),
  keyIndex: setting({
    flag: 'key-index', kind: bool, default: true,
    help: 'keep every live key\'s metadata in memory (about 150 bytes a key) so most write batches take one round trip; --no-key-index reads PostgreSQL first',
  }),
  cacheMaxBytes: setting({
    flag: 'cache-max-bytes', kind: count, default: 256 * 1024 * 1024, defaultText: '268435456 (256 MiB)',
    help: 'bound of the head cache: live keys with their values in memory (about 240 bytes a key plus key and value), answering Ranges without scanning PostgreSQL; a key space over it is read from PostgreSQL (a load is retried after 1 min, doubling to 1 h); 0 = no cache',
  }),
  progressNotifyIntervalMs: setting({
    flag: 'experimental-watch-progress-notify-interval', kind: duration, default: 10 * 60 * 1000, etcd: true,
    help: 'how often idle watchers get a progress notification',
  }),
  watchMaxQueuedBytes: setting({
    flag: 'watch-max-queued-bytes', kind: int, default: 32 * 1024 * 1024,
    help: 'unread watch responses a stream may hold before its watchers are canceled',
  }),
  etcdVersion: setting({
    flag: 'etcd-version', kind: str, default: '3.6.11',
    help: 'etcd release reported by Status and /version, whose behaviour pgetcd follows where etcd changed it (3.4.x to 3.6.x)',
  }),
  autoCompactionMode: setting({
    flag: 'auto-compaction-mode', kind: choice(['periodic', 'revision'] as const), default: 'periodic', etcd: true,
    help: 'periodic: keep --auto-compaction-retention of time; revision: keep that many revisions',
  }),
  autoCompactionRetention: setting({
    flag: 'auto-compaction-retention', kind: str, default: '0', etcd: true,
    help: 'history to keep: a duration (periodic; a bare number is hours, as in etcd) or a revision count; 0 = no auto-compaction',
  }),
  compactionRowsPerSecond: setting({
    flag: 'compaction-rows-per-second', kind: count, default: 0,
    help: 'most kv_log rows physical compaction removes per second (pauses between batches); 0 = no limit',
  }),
  compactionBatchRevisions: setting({
    flag: 'compaction-batch-revisions', kind: int, default: 10_000,
    help: 'revisions of history physical compaction removes per transaction',
  }),
  autoPartition: setting({
    flag: 'auto-partition', kind: bool, default: false,
    help: 'give a resource type its own kv_log partition once --auto-partition-rows of its rows are stored (needs DDL rights)',
  }),
  autoPartitionRows: setting({ flag: 'auto-partition-rows', kind: int, default: 10_000, help: 'rows of one kind that trigger --auto-partition' }),
  logLevel: setting({ flag: 'log-level', kind: choice(LOG_LEVELS), default: 'info', etcd: true, help: 'least severe log level written' }),
  warningApplyDuration: setting({
    flag: 'warning-apply-duration', kind: duration, default: 100, etcd: true,
    help: 'requests slower than this are logged at warn with method, key prefix and duration (0 = never)',
  }),
  logFormat: setting({
    flag: 'log-format', kind: choice(LOG_FORMATS), default: 'auto',
    help: 'json lines, or text for people; auto = text when stdout is a terminal, json otherwise',
  }),
  listenMetricsUrls: setting({
    flag: 'listen-metrics-urls', kind: urls, default: ['http://127.0.0.1:2381'], etcd: true,
    help: 'URLs to serve /metrics, /health, /livez, /readyz and /version on, comma separated ("" for none)',
  }),
  metrics: setting({
    flag: 'metrics', kind: choice(METRICS_MODES), default: 'extensive', etcd: true,
    help: "etcd's metrics level: extensive adds the gRPC latency histogram (etcd's dashboards and alerts use it; etcd's default is basic); off records nothing",
  }),
  metricsSampleIntervalMs: setting({
    flag: 'metrics-sample-interval', kind: duration, default: 30_000,
    help: 'how often database sizes and kv_log partitions are measured for /metrics (in the background, never in a scrape)',
  }),
  quotaBackendBytes: setting({
    flag: 'quota-backend-bytes', kind: signedInt, default: 0, etcd: true, defaultText: '0 (2 GiB, as etcd)',
    help: 'database size (dbSize: pgetcd\'s tables on disk) past which writes that add data are refused and alarm NOSPACE is raised (etcd_server_quota_backend_bytes); below 0: no quota',
  }),
  configFile: setting({
    flag: 'config-file', kind: file, default: undefined, etcd: true,
    help: "YAML file of settings: etcd's config file keys (client-transport-security included) and pgetcd's flag names",
  }),
};

/** Every setting's value. Derived from SETTINGS, so a new entry is a new field. */
export type Config = ValuesOf<typeof SETTINGS>;

function defaults(): Config {
  const out = {} as Record<string, unknown>;
  for (const [k, s] of Object.entries(SETTINGS)) out[k] = s.default;
  return out as Config;
}

export const DEFAULTS: Config = defaults();

export const USAGE = usage(SETTINGS);

/** Settings that depend on each other, checked after every source is read. */
function derive(cfg: Config): Config {
  if (cfg.listenClientUrls.length === 0) throw new ConfigError('--listen-client-urls: at least one URL is needed');
  if (cfg.advertiseClientUrls.length === 0) cfg.advertiseClientUrls = [...cfg.listenClientUrls];
  try {
    etcdBehaviour(cfg.etcdVersion);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  checkTls(cfg);
  return cfg;
}

/** The client TLS settings (client port and https:// metrics URLs), when --cert-file and --key-file are set. */
export function clientTls(cfg: Config): TlsSettings | undefined {
  if (!cfg.certFile || !cfg.keyFile) return undefined;
  return {
    certFile: cfg.certFile, keyFile: cfg.keyFile, clientCertAuth: cfg.clientCertAuth, trustedCaFile: cfg.trustedCaFile,
    cipherSuites: cfg.cipherSuites, minVersion: cfg.tlsMinVersion,
  };
}

function checkTls(cfg: Config): void {
  const where = cfg.listenClientUrls.some((u) => u.startsWith('https://')) ? '--listen-client-urls'
    : cfg.listenMetricsUrls.some((u) => u.startsWith('https://')) ? '--listen-metrics-urls' : undefined;
  if (!where) return;
  if (!cfg.certFile) throw new ConfigError(`--cert-file: needed for the https:// URLs in ${where}`);
  if (!cfg.keyFile) throw new ConfigError(`--key-file: needed for the https:// URLs in ${where}`);
  if (cfg.clientCertAuth && !cfg.trustedCaFile) throw new ConfigError('--trusted-ca-file: needed with --client-cert-auth');
  if (cfg.tlsMinVersion === 'TLS1.3' && cfg.cipherSuites.length > 0) throw new ConfigError('--cipher-suites: cannot be set with --tls-min-version TLS1.3 (TLS 1.3 suites are fixed)');
  try {
    readSecureContext(clientTls(cfg)!);
  } catch (err) {
    const msg = (err as Error).message;
    const which = /cipher/i.test(msg) ? '--cipher-suites' : /ca|certificate authority/i.test(msg) && cfg.trustedCaFile ? '--trusted-ca-file' : '--cert-file/--key-file';
    throw new ConfigError(`${which}: ${msg.split('\n')[0]}`);
  }
}

export interface LoadedConfig {
  config: Config;
  /** etcd config-file keys that pgetcd ignores (log them). */
  ignored: string[];
}

/** Reads flags, environment and the config file; 'help' for -h/--help. Throws ConfigError. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): LoadedConfig | 'help' {
  const loaded = load(SETTINGS, 'configFile', argv, env);
  if (loaded.help) return 'help';
  return { config: derive(loaded.values), ignored: loaded.ignored };
}

export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config | 'help' {
  const r = loadConfig(argv, env);
  return r === 'help' ? r : r.config;
}

/** host:port for grpc-js from an etcd-style URL (http://127.0.0.1:2379 or 127.0.0.1:2379). */
export function bindAddress(url: string): string {
  const u = new URL(url.includes('://') ? url : `http://${url}`);
  const host = u.hostname.startsWith('[') ? u.hostname : u.hostname.includes(':') ? `[${u.hostname}]` : u.hostname;
  return `${host}:${u.port || '2379'}`;
}
