import * as grpc from '@grpc/grpc-js';
import type { Raw } from './raw.ts';

/** A decoded WatchResponse as the raw client yields it (int64 as decimal strings). */
export interface WResp {
  header: { revision: string; cluster_id: string; member_id: string; raft_term: string };
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  fragment: boolean;
  events: Array<{
    type: number;
    kv: { key: Buffer; value: Buffer; create_revision: string; mod_revision: string; version: string; lease: string };
    prev_kv: { key: Buffer; value: Buffer; create_revision: string; mod_revision: string; version: string; lease: string } | null;
  }>;
}

export function isProgress(r: WResp): boolean {
  return !r.created && !r.canceled && r.events.length === 0 && r.compact_revision === '0';
}

/**
 * One raw Watch stream (our .proto, no client library): sends requests and reads responses in
 * order with a cursor, so tests can assert exactly what the server sent and in which order.
 */
export class RawWatch {
  readonly all: WResp[] = [];
  private cursor = 0;
  private wake: (() => void) | undefined;
  error: grpc.ServiceError | undefined;
  ended = false;
  readonly stream: grpc.ClientDuplexStream<object, WResp>;

  constructor(raw: Raw, opts: { deadline?: number } = {}) {
    const c = raw.Watch as unknown as { Watch(md?: grpc.Metadata, o?: grpc.CallOptions): grpc.ClientDuplexStream<object, WResp> };
    this.stream = opts.deadline ? c.Watch(new grpc.Metadata(), { deadline: opts.deadline }) : c.Watch();
    this.stream.on('data', (r: WResp) => { this.all.push(r); this.wake?.(); });
    this.stream.on('error', (e: grpc.ServiceError) => { this.error = e; this.wake?.(); });
    this.stream.on('end', () => { this.ended = true; this.wake?.(); });
  }

  create(req: Record<string, unknown>): void {
    this.stream.write({ create_request: req });
  }

  cancel(id: string | number): void {
    this.stream.write({ cancel_request: { watch_id: String(id) } });
  }

  progress(): void {
    this.stream.write({ progress_request: {} });
  }

  /** The next response not read yet. */
  async next(timeoutMs = 15_000): Promise<WResp> {
    const deadline = Date.now() + timeoutMs;
    while (this.cursor >= this.all.length) {
      if (this.error) throw new Error(`stream failed: ${this.error.code} ${this.error.details}`);
      if (this.ended) throw new Error('stream ended');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no watch response within ${timeoutMs} ms (got ${this.all.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(t); resolve(); };
      });
      this.wake = undefined;
    }
    return this.all[this.cursor++]!;
  }

  /** Creates a watch and returns its created response. */
  async watch(req: Record<string, unknown>): Promise<WResp> {
    this.create(req);
    const r = await this.next();
    if (!r.created) throw new Error(`expected a created response, got ${JSON.stringify(r)}`);
    return r;
  }

  /**
   * A progress request as a barrier: returns every response sent before the progress answer
   * (which pgetcd sends after everything committed before the request). Needs a synced watcher.
   */
  async barrier(timeoutMs = 15_000): Promise<WResp[]> {
    this.progress();
    const got: WResp[] = [];
    for (;;) {
      const r = await this.next(timeoutMs);
      if (r.watch_id === '-1' && isProgress(r)) return got;
      got.push(r);
    }
  }

  /** Reads responses until `count` events arrived for watchId (other responses are kept aside). */
  async events(watchId: string, count: number, timeoutMs = 30_000): Promise<{ events: WResp['events']; responses: WResp[] }> {
    const events: WResp['events'] = [];
    const responses: WResp[] = [];
    const deadline = Date.now() + timeoutMs;
    while (events.length < count) {
      const r = await this.next(Math.max(1, deadline - Date.now()));
      if (r.watch_id !== watchId) continue;
      responses.push(r);
      if (r.canceled) throw new Error(`watch ${watchId} canceled: ${r.cancel_reason} (compact ${r.compact_revision})`);
      events.push(...r.events);
    }
    return { events, responses };
  }

  close(): void {
    this.stream.cancel();
  }
}
