import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SETTINGS } from '../config.ts';
import { ConfigError, load } from '../config/load.ts';
import type { EndpointOptions } from '../db/endpoint.ts';
import { CliError, parseFormat, type Format } from './output.ts';

type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/**
 * The flags every operator command shares with the server: where the database is (same names
 * and environment variables as `pgetcd serve`), the output format and help.
 */
export const COMMON_OPTIONS = {
  'endpoint': { type: 'string' },
  'data-dir': { type: 'string' },
  'embedded-port': { type: 'string' },
  'config-file': { type: 'string' },
  'datastore-cafile': { type: 'string' },
  'datastore-certfile': { type: 'string' },
  'datastore-keyfile': { type: 'string' },
  'datastore-password-file': { type: 'string' },
  'log-level': { type: 'string' },
  'output': { type: 'string', short: 'o' },
  'help': { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export const COMMON_HELP = `Database (as for pgetcd serve):
  --endpoint URL          external PostgreSQL (also PGETCD_ENDPOINT, DATABASE_URL);
                          without it the embedded PostgreSQL in --data-dir
  --data-dir DIR          embedded PostgreSQL folder (default ./pgetcd-data)
  --embedded-port N       embedded PostgreSQL port / socket name (default 5432)
  --config-file FILE      the server's YAML config file (its database settings are used)
  --datastore-cafile, --datastore-certfile, --datastore-keyfile, --datastore-password-file FILE
                          TLS and password for the database, as for pgetcd serve
Output:
  -o, --output FORMAT     table (default) or json
  --log-level LEVEL       (default warn)
  -h, --help              this text
`;

export interface DbFlags {
  endpoint: string | undefined;
  dataDir: string;
  embeddedPort: number;
  datastore: EndpointOptions;
  logLevel: string;
  format: Format;
}

export interface Parsed<V> {
  values: V;
  positionals: string[];
  db: DbFlags;
  help: boolean;
}

/** Parses a command's flags; unknown flags and bad values become one-line errors (exit 2). */
export function parseCommand<O extends OptionSpec>(argv: string[], options: O, env: NodeJS.ProcessEnv = process.env): Parsed<Record<string, string | boolean | undefined>> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options }, strict: true, allowPositionals: true });
  } catch (err) {
    throw new CliError((err as Error).message.split('\n')[0]!, 2);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  return {
    values: v,
    positionals: parsed.positionals,
    help: v.help === true,
    db: {
      ...databaseSettings(v, env),
      logLevel: (v['log-level'] as string | undefined) ?? env.PGETCD_LOG_LEVEL ?? 'warn',
      format: parseFormat(v.output as string | undefined),
    },
  };
}

/** The server's database settings, read the server's way (flags > environment > config file). */
const DB_SETTINGS = {
  endpoint: SETTINGS.endpoint, dataDir: SETTINGS.dataDir, embeddedPort: SETTINGS.embeddedPort, configFile: SETTINGS.configFile,
  datastoreCafile: SETTINGS.datastoreCafile, datastoreCertfile: SETTINGS.datastoreCertfile, datastoreKeyfile: SETTINGS.datastoreKeyfile,
  datastorePasswordFile: SETTINGS.datastorePasswordFile,
};

function databaseSettings(v: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): { endpoint: string | undefined; dataDir: string; embeddedPort: number; datastore: EndpointOptions } {
  const argv: string[] = [];
  for (const name of ['endpoint', 'data-dir', 'embedded-port', 'config-file', 'datastore-cafile', 'datastore-certfile', 'datastore-keyfile', 'datastore-password-file']) {
    const x = v[name];
    if (typeof x === 'string') argv.push(`--${name}=${x}`);
  }
  try {
    const r = load(DB_SETTINGS, 'configFile', argv, env).values;
    return {
      endpoint: r.endpoint || undefined, dataDir: r.dataDir, embeddedPort: r.embeddedPort,
      datastore: { caFile: r.datastoreCafile, certFile: r.datastoreCertfile, keyFile: r.datastoreKeyfile, passwordFile: r.datastorePasswordFile },
    };
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2);
    throw err;
  }
}

/** A positive integer flag, or the default. */
export function intFlag(v: string | boolean | undefined, name: string, d: number): number {
  if (v === undefined) return d;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n <= 0) throw new CliError(`--${name} must be a positive integer`, 2);
  return n;
}
