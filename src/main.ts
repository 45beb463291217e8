import { App } from './app.ts';
import { parseConfig, USAGE } from './config.ts';
import { createLogger } from './log.ts';

async function main(): Promise<void> {
  let cfg;
  try {
    cfg = parseConfig(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`pgetcd: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (cfg === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const log = createLogger(cfg.logLevel);
  let app: App;
  try {
    app = await App.start(cfg, log);
  } catch (err) {
    log.fatal({ err }, 'failed to start');
    process.exit(1);
  }
  let signals = 0;
  const shutdown = (sig: string): void => {
    if (++signals > 1) {
      log.warn({ sig }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ sig }, 'signal received');
    app.stop().then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

void main();
