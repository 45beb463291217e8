import pino from 'pino';
import pretty from 'pino-pretty';

export type Logger = pino.Logger;

/** json: one JSON object a line (as etcd logs); text: pino-pretty; auto: text on a terminal. */
export type LogFormat = 'auto' | 'json' | 'text';

/** Field names that may carry credentials: censored wherever they appear in a log line. */
const REDACT = ['endpoint', 'password', '*.password', 'url', '*.url', 'connectionString', '*.connectionString', 'datastoreEndpoint'];

/** One process logger; modules take a child of it. Secrets never go in log fields. */
export function createLogger(level: string = process.env.PGETCD_LOG_LEVEL ?? 'info', format: LogFormat = 'json'): Logger {
  const opts: pino.LoggerOptions = {
    level,
    base: { svc: 'pgetcd' },
    redact: { paths: REDACT, censor: '[redacted]' },
  };
  const text = format === 'text' || (format === 'auto' && process.stdout.isTTY === true);
  if (!text) return pino(opts);
  return pino(opts, pretty({ sync: true, ignore: 'svc,pid,hostname', translateTime: 'SYS:HH:MM:ss.l' }));
}
