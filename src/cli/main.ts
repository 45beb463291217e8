import { USAGE } from '../config.ts';
import { createLogger } from '../log.ts';
import { CliError } from './output.ts';
import { ConfigError } from '../config/load.ts';

/** A subcommand: parses its own arguments and returns the exit status. */
export type Command = (argv: string[]) => Promise<number>;

interface Entry { summary: string; load: () => Promise<Command> }

const COMMANDS: Record<string, Entry> = {
  serve: { summary: 'run the etcd server (the default command)', load: async () => { throw new Error('unreachable'); } },
  migrate: { summary: 'apply, roll back or list schema migrations', load: async () => (await import('./migrate.ts')).migrateCommand },
  partitions: { summary: 'list, add, remove and tune kv_log partitions', load: async () => (await import('./partitions.ts')).partitionsCommand },
  import: { summary: 'copy a kine database or a live etcd into an empty pgetcd database', load: async () => (await import('./import.ts')).importCommand },
  export: { summary: 'write the live keys and leases as JSON lines', load: async () => (await import('./export.ts')).exportCommand },
  check: { summary: 'check kv_log, kv_current, leases and meta against each other', load: async () => (await import('./check.ts')).checkCommand },
  compact: { summary: 'compact history up to a revision', load: async () => (await import('./compact.ts')).compactCommand },
};

export const TOP_USAGE = `Usage: pgetcd [command] [flags]

Commands:
${Object.entries(COMMANDS).map(([n, e]) => `  ${n.padEnd(12)}${e.summary}`).join('\n')}

Run \`pgetcd <command> --help\` for a command's flags. Without a command, pgetcd serves:

${USAGE}`;

/** Runs `pgetcd <argv>`; undefined while the server runs, else the exit status. */
export async function runCli(argv: string[]): Promise<number | undefined> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(TOP_USAGE);
    return 0;
  }
  if (first === undefined || first.startsWith('-') || first === 'serve') {
    const { serve } = await import('./serve.ts');
    return serve(first === 'serve' ? rest : argv);
  }
  const entry = COMMANDS[first];
  if (!entry) {
    process.stderr.write(`pgetcd: unknown command "${first}" (try pgetcd --help)\n`);
    return 2;
  }
  try {
    return await (await entry.load())(rest);
  } catch (err) {
    const code = err instanceof CliError ? err.code : err instanceof ConfigError ? 2 : 1;
    if (!(err instanceof CliError) && process.env.PGETCD_DEBUG) createLogger('debug').error({ err }, 'command failed');
    process.stderr.write(`pgetcd ${first}: ${oneLine(err)}\n`);
    return code;
  }
}

function oneLine(err: unknown): string {
  const e = err as { message?: string; code?: string };
  const msg = (e?.message ?? String(err)).split('\n')[0]!;
  return e?.code === 'ECONNREFUSED' ? `cannot reach PostgreSQL (${msg})` : msg;
}
