/** What the HTTP plugins read; the app wires real implementations (see src/health). */

/** etcd's /health answer: `health` is the string "true" or "false", as etcd writes it. */
export interface HealthReport {
  ok: boolean;
  /** Empty when healthy; else why not (e.g. "DATABASE UNREACHABLE"). */
  reason: string;
}

/** One named check of /livez or /readyz. */
export interface Check {
  name: string;
  ok: boolean;
  reason?: string;
}

export interface HealthSource {
  /**
   * etcd's /health: no alarm (except those named in `excludeAlarms`, etcd's ?exclude=NOSPACE),
   * the database answers, the watch listener is connected.
   */
  health(excludeAlarms?: ReadonlySet<string>): Promise<HealthReport>;
  /** /readyz: migrations ran, the key index loaded, the listener connected, the database answers. */
  ready(): Promise<Check[]>;
  /** /livez: the process serves requests. */
  live(): Check[];
}

export interface MetricsSource {
  render(accept?: string): Promise<{ contentType: string; body: string }>;
}
