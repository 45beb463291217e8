import { App } from '../app.ts';
import { ConfigError, loadConfig, USAGE } from '../config.ts';
import { createLogger } from '../log.ts';

/** A configuration mistake: one line on stderr, exit 2, no stack trace. */
function configFailure(message: string): number {
  process.stderr.write(`pgetcd: ${message}\n`);
  return 2;
}

/** `pgetcd` / `pgetcd serve`: the etcd server. Returns undefined while it runs (signals end it). */
export async function serve(argv: string[]): Promise<number | undefined> {
  let loaded;
  try {
    loaded = loadConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) return configFailure(err.message);
    throw err;
  }
  if (loaded === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const cfg = loaded.config;
  const log = createLogger(cfg.logLevel, cfg.logFormat);
  if (loaded.ignored.length > 0) log.warn({ keys: loaded.ignored }, 'config file keys of etcd that pgetcd does not use');
  // Signal handlers first: a SIGTERM between the listener opening and the handlers being
  // installed would otherwise kill the process without a graceful shutdown. A signal during
  // start-up stops the server as soon as it has started (a second one exits at once).
  let app: App | undefined;
  let signals = 0;
  let stopRequested: string | undefined;
  const stop = (running: App, sig: string): void => {
    log.info({ sig }, 'signal received, shutting down (send it again to exit at once)');
    running.stop().then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  const shutdown = (sig: string): void => {
    if (++signals > 1) {
      log.warn({ sig }, 'second signal: exiting now');
      process.exit(1);
    }
    if (app) stop(app, sig);
    else stopRequested = sig;
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  try {
    app = await App.start(cfg, log);
  } catch (err) {
    if (err instanceof ConfigError) return configFailure(err.message);
    log.fatal({ err }, 'failed to start');
    process.stderr.write(`pgetcd: ${(err as Error).message.split('\n')[0]}\n`);
    return 1;
  }
  if (stopRequested) stop(app, stopRequested);
  return undefined;
}
