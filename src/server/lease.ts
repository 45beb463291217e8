import type * as grpc from '@grpc/grpc-js';
import type { Lessor } from '../lease/lessor.ts';
import { unary, type ServerContext } from './context.ts';
import { etcdError, toGrpcError, type GrpcError } from './errors.ts';
import { admit, LEASE_COST } from './quota.ts';
import type { Int64 } from './wire.ts';

interface WireLeaseGrantRequest { TTL: Int64; ID: Int64 }
interface WireLeaseRevokeRequest { ID: Int64 }
interface WireLeaseKeepAliveRequest { ID: Int64 }
interface WireLeaseTimeToLiveRequest { ID: Int64; keys: boolean }

export interface LeaseService {
  impl: grpc.UntypedServiceImplementation;
  /** Ends every open keep-alive stream with etcd's "server stopped" (clients retry elsewhere). */
  closeStreams(): void;
}

/** etcdserverpb.Lease: translation only; lease semantics live in src/lease. */
export function leaseService(ctx: ServerContext, lessor: Lessor): LeaseService {
  const streams = new Set<KeepAliveStream>();
  const impl: grpc.UntypedServiceImplementation = {
    LeaseGrant: unary(ctx, async (req: WireLeaseGrantRequest) => {
      const refused = admit(ctx, LEASE_COST);
      if (refused) await refused;
      const r = await lessor.grant(req.ID, req.TTL);
      ctx.metrics.leaseGranted();
      return { header: ctx.header(r.revision), ID: r.id, TTL: String(r.ttl), error: '' };
    }),
    LeaseRevoke: unary(ctx, async (req: WireLeaseRevokeRequest) => {
      const refused = admit(ctx, 0);
      if (refused) await refused;
      const r = await lessor.revoke(req.ID);
      ctx.metrics.leaseRevoked();
      return { header: ctx.header(r.revision) };
    }),
    LeaseTimeToLive: unary(ctx, async (req: WireLeaseTimeToLiveRequest) => {
      const r = await lessor.timeToLive(req.ID, req.keys);
      return { header: ctx.header(r.revision), ID: req.ID, TTL: String(r.ttl), grantedTTL: String(r.grantedTtl), keys: r.keys };
    }),
    LeaseLeases: unary(ctx, async () => {
      const r = await lessor.leases();
      return { header: ctx.header(r.revision), leases: r.ids.map((ID) => ({ ID })) };
    }),
    LeaseKeepAlive: (call: grpc.ServerDuplexStream<WireLeaseKeepAliveRequest, object>) => {
      const s = new KeepAliveStream(ctx, lessor, call, () => streams.delete(s));
      streams.add(s);
    },
  };
  return {
    impl,
    closeStreams() {
      for (const s of [...streams]) s.finish(etcdError('Stopped'));
    },
  };
}

/**
 * One LeaseKeepAlive stream. A client (Go's clientv3) sends the keep-alives of all its leases on
 * one stream, so requests are renewed concurrently (the renewer batches them) rather than one
 * after another; each answer carries the request's ID, the granted TTL (0 when the lease is
 * unknown or expired) and a header.
 */
class KeepAliveStream {
  private pending = 0;
  private halfClosed = false;
  private done = false;

  constructor(
    private readonly ctx: ServerContext,
    private readonly lessor: Lessor,
    private readonly call: grpc.ServerDuplexStream<WireLeaseKeepAliveRequest, object>,
    private readonly onDone: () => void,
  ) {
    call.on('data', (req: WireLeaseKeepAliveRequest) => this.request(req));
    call.on('end', () => {
      // The client closed its side: answer what is pending, then end with OK like etcd.
      this.halfClosed = true;
      if (this.pending === 0) this.finish();
    });
    call.on('cancelled', () => this.abandon());
    call.on('close', () => this.abandon());
    call.on('error', () => this.abandon());
  }

  private request(req: WireLeaseKeepAliveRequest): void {
    if (this.done) return;
    this.pending++;
    this.lessor.keepAlive(req.ID).then(
      (r) => {
        this.pending--;
        if (r.ttl > 0) this.ctx.metrics.leaseRenewed();
        if (this.done) return;
        this.call.write({ header: this.ctx.header(r.revision), ID: req.ID, TTL: String(r.ttl) });
        if (this.halfClosed && this.pending === 0) this.finish();
      },
      (err: unknown) => {
        this.pending--;
        this.finish(toGrpcError(err, this.ctx.log));
      },
    );
  }

  finish(err?: GrpcError): void {
    if (this.done) return;
    this.done = true;
    this.onDone();
    if (err) this.call.emit('error', err);
    else this.call.end();
  }

  private abandon(): void {
    if (this.done) return;
    this.done = true;
    this.onDone();
  }
}
