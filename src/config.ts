import { parseArgs } from 'node:util';

/** pgetcd's settings. Flag names follow etcd's where etcd has the same setting. */
export interface Config {
  name: string;
  listenClientUrls: string[];
  advertiseClientUrls: string[];
  /** External PostgreSQL URL; undefined = embedded PostgreSQL in dataDir. */
  endpoint: string | undefined;
  dataDir: string;
  embeddedPort: number;
  embeddedTcp: boolean;
  migrate: boolean;
  maxRequestBytes: number;
  maxTxnOps: number;
  maxBatch: number;
  maxBatchBytes: number;
  /** Keep every live key's metadata in memory so most write batches take one round trip. */
  keyIndex: boolean;
  progressNotifyIntervalMs: number;
  /** Bytes of watch responses a stream may hold unread before its watchers are canceled. */
  watchMaxQueuedBytes: number;
  etcdVersion: string;
  logLevel: string;
}

export const DEFAULTS: Config = {
  name: 'default',
  listenClientUrls: ['http://127.0.0.1:2379'],
  advertiseClientUrls: [],
  endpoint: undefined,
  dataDir: './pgetcd-data',
  embeddedPort: 5432,
  embeddedTcp: false,
  migrate: true,
  maxRequestBytes: 1.5 * 1024 * 1024,
  maxTxnOps: 128,
  maxBatch: 512,
  maxBatchBytes: 8 * 1024 * 1024,
  keyIndex: true,
  progressNotifyIntervalMs: 10 * 60 * 1000,
  watchMaxQueuedBytes: 32 * 1024 * 1024,
  etcdVersion: '3.5.17',
  logLevel: 'info',
};

export const USAGE = `Usage: pgetcd [flags]

An etcd v3 server whose state lives in PostgreSQL.

  --name NAME                          member name (default "default")
  --listen-client-urls URLS            gRPC listen URLs, comma separated (default http://127.0.0.1:2379)
  --advertise-client-urls URLS         URLs reported to clients (default: the listen URLs)
  --endpoint URL                       external PostgreSQL (also PGETCD_ENDPOINT, DATABASE_URL);
                                       without it an embedded PostgreSQL runs in --data-dir
  --data-dir DIR                       embedded PostgreSQL folder (default ./pgetcd-data)
  --embedded-port N                    embedded PostgreSQL port / socket name (default 5432)
  --embedded-tcp                       embedded PostgreSQL also listens on 127.0.0.1:port
  --no-migrate                         do not run migrations on start
  --max-request-bytes N                largest write request (default 1572864)
  --max-txn-ops N                      most operations in a txn (default 128)
  --max-batch N                        most write requests per Postgres transaction (default 512)
  --max-batch-bytes N                  most request bytes per Postgres transaction (default 8 MiB)
  --no-key-index                       no in-memory key index (about 150 bytes per live key):
                                       every write batch reads from PostgreSQL first
  --experimental-watch-progress-notify-interval DURATION  (default 10m)
  --watch-max-queued-bytes N           unread watch responses a stream may hold before its watchers are canceled (default 32 MiB)
  --etcd-version V                     version reported by Status (also PGETCD_ETCD_VERSION; default 3.5.17)
  --log-level LEVEL                    trace|debug|info|warn|error (default info)
  -h, --help                           this text
`;

export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new Error(`invalid duration "${s}" (use e.g. 500ms, 10s, 10m)`);
  const n = Number(m[1]);
  switch (m[2]) {
    case 'ms': return n;
    case 'm': return n * 60_000;
    case 'h': return n * 3_600_000;
    default: return n * 1000;
  }
}

function int(name: string, v: string | undefined, d: number): number {
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer`);
  return n;
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      'name': { type: 'string' },
      'listen-client-urls': { type: 'string' },
      'advertise-client-urls': { type: 'string' },
      'endpoint': { type: 'string' },
      'data-dir': { type: 'string' },
      'embedded-port': { type: 'string' },
      'embedded-tcp': { type: 'boolean' },
      'no-migrate': { type: 'boolean' },
      'max-request-bytes': { type: 'string' },
      'max-txn-ops': { type: 'string' },
      'max-batch': { type: 'string' },
      'max-batch-bytes': { type: 'string' },
      'no-key-index': { type: 'boolean' },
      'experimental-watch-progress-notify-interval': { type: 'string' },
      'watch-max-queued-bytes': { type: 'string' },
      'etcd-version': { type: 'string' },
      'log-level': { type: 'string' },
      'help': { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const list = (s: string | undefined): string[] | undefined => s?.split(',').map((x) => x.trim()).filter(Boolean);
  const listen = list(values['listen-client-urls']) ?? DEFAULTS.listenClientUrls;
  return {
    name: values.name ?? DEFAULTS.name,
    listenClientUrls: listen,
    advertiseClientUrls: list(values['advertise-client-urls']) ?? listen,
    endpoint: values.endpoint ?? env.PGETCD_ENDPOINT ?? env.DATABASE_URL ?? undefined,
    dataDir: values['data-dir'] ?? DEFAULTS.dataDir,
    embeddedPort: int('embedded-port', values['embedded-port'], DEFAULTS.embeddedPort),
    embeddedTcp: values['embedded-tcp'] ?? false,
    migrate: !values['no-migrate'],
    maxRequestBytes: int('max-request-bytes', values['max-request-bytes'], DEFAULTS.maxRequestBytes),
    maxTxnOps: int('max-txn-ops', values['max-txn-ops'], DEFAULTS.maxTxnOps),
    maxBatch: int('max-batch', values['max-batch'], DEFAULTS.maxBatch),
    maxBatchBytes: int('max-batch-bytes', values['max-batch-bytes'], DEFAULTS.maxBatchBytes),
    keyIndex: !values['no-key-index'],
    progressNotifyIntervalMs: values['experimental-watch-progress-notify-interval']
      ? parseDuration(values['experimental-watch-progress-notify-interval'])
      : DEFAULTS.progressNotifyIntervalMs,
    watchMaxQueuedBytes: int('watch-max-queued-bytes', values['watch-max-queued-bytes'], DEFAULTS.watchMaxQueuedBytes),
    etcdVersion: values['etcd-version'] ?? env.PGETCD_ETCD_VERSION ?? DEFAULTS.etcdVersion,
    logLevel: values['log-level'] ?? env.PGETCD_LOG_LEVEL ?? DEFAULTS.logLevel,
  };
}

/** host:port for grpc-js from an etcd-style URL (http://127.0.0.1:2379 or 127.0.0.1:2379). */
export function bindAddress(url: string): string {
  const u = new URL(url.includes('://') ? url : `http://${url}`);
  const host = u.hostname.startsWith('[') ? u.hostname : u.hostname.includes(':') ? `[${u.hostname}]` : u.hostname;
  return `${host}:${u.port || '2379'}`;
}
