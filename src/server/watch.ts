import type * as grpc from '@grpc/grpc-js';
import type { Session, SessionRequest, SessionSink, OutResponse } from '../watch/session.ts';
import { RAFT_TERM, type ServerContext } from './context.ts';
import { etcdError } from './errors.ts';
import { loadEtcdProto } from './proto.ts';
import { preEncodedDefinition, WatchResponseEncoder } from './watchcodec.ts';
import type { Int64 } from './wire.ts';

/** Decoded etcdserverpb.WatchRequest (see wire.ts for the loader's conventions). */
interface WireWatchCreateRequest {
  key: Buffer;
  range_end: Buffer;
  start_revision: Int64;
  progress_notify: boolean;
  filters: number[];
  prev_kv: boolean;
  watch_id: Int64;
  fragment: boolean;
}

interface WireWatchRequest {
  request_union?: 'create_request' | 'cancel_request' | 'progress_request';
  create_request?: WireWatchCreateRequest | null;
  cancel_request?: { watch_id: Int64 } | null;
  progress_request?: object | null;
}

export interface WatchService {
  impl: grpc.UntypedServiceImplementation;
  /** The service definition to register (its serializer takes pre-encoded responses). */
  definition: grpc.ServiceDefinition;
  /** Ends every open stream with etcd's "server stopped" (UNAVAILABLE: clients reconnect elsewhere). */
  closeAll(): void;
  /** Cancels every watcher of every stream with a reason; the streams stay open. */
  cancelAll(reason: string, compactRevision: number): void;
  readonly streams: number;
}

function fromWire(req: WireWatchRequest): SessionRequest | undefined {
  switch (req.request_union) {
    case 'create_request': {
      const c = req.create_request;
      if (!c) return undefined;
      return {
        type: 'create',
        create: {
          key: c.key, range_end: c.range_end, start_revision: Number(c.start_revision),
          progress_notify: c.progress_notify, filters: c.filters, prev_kv: c.prev_kv,
          watch_id: c.watch_id, fragment: c.fragment,
        },
      };
    }
    case 'cancel_request':
      return req.cancel_request ? { type: 'cancel', watchId: req.cancel_request.watch_id } : undefined;
    case 'progress_request':
      return req.progress_request ? { type: 'progress' } : undefined;
    default:
      // etcd ignores a request it does not understand and keeps the stream.
      return undefined;
  }
}

/** etcdserverpb.Watch: translation only; watch semantics live in src/watch (Session). */
export function watchService(ctx: ServerContext, open: (sink: SessionSink) => Session): WatchService {
  const open_ = new Map<grpc.ServerDuplexStream<WireWatchRequest, object>, Session>();
  // Responses are encoded here (the header as ctx.header() would give it), each event once.
  const encoder = new WatchResponseEncoder(ctx.clusterId, ctx.memberId, RAFT_TERM);
  const toWire = (r: OutResponse): Buffer => encoder.encode(r);
  const impl: grpc.UntypedServiceImplementation = {
    Watch: (call: grpc.ServerDuplexStream<WireWatchRequest, object>) => {
      const session = open({ write: (r, sent) => call.write(toWire(r), sent) });
      open_.set(call, session);
      const done = (): void => {
        session.close();
        open_.delete(call);
      };
      call.on('data', (req: WireWatchRequest) => {
        const r = fromWire(req);
        if (r) session.handle(r);
      });
      call.on('drain', () => session.drained());
      // A client that half-closes keeps receiving events until it cancels, as with etcd.
      call.on('end', () => undefined);
      call.on('cancelled', done);
      call.on('error', done);
      call.on('close', done);
    },
  };
  return {
    impl,
    definition: preEncodedDefinition(loadEtcdProto().services.Watch),
    closeAll() {
      for (const [call, session] of [...open_]) {
        session.close();
        open_.delete(call);
        call.emit('error', etcdError('Stopped'));
      }
    },
    cancelAll(reason, compactRevision) {
      for (const session of open_.values()) session.cancelAll(reason, compactRevision);
    },
    get streams() {
      return open_.size;
    },
  };
}
