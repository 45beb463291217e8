import pino from 'pino';

export type Logger = pino.Logger;

/** One process logger; modules take a child of it. Secrets never go in log fields. */
export function createLogger(level: string = process.env.PGETCD_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { svc: 'pgetcd' },
    redact: { paths: ['endpoint', 'password', '*.password', 'url'], censor: '[redacted]' },
  });
}
