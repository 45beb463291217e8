/**
 * grpc.health.v1.Health, as etcd registers it: the whole server ("") is SERVING while
 * PostgreSQL answers and NOT_SERVING while it does not (pgetcd can serve nothing without it).
 * Kubernetes' native gRPC probes and grpc_health_probe call Check; Watch streams the status
 * and its changes. Any other service name is unknown, as in grpc-go's health server.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from '../log.ts';
import type { Component } from './component.ts';
import { LOADER_OPTIONS } from './proto.ts';

export const SERVING = 1;
export const NOT_SERVING = 2;
export const SERVICE_UNKNOWN = 3;

/** Resolves undefined when the server can serve, else the reason it cannot. */
export type HealthProbe = () => Promise<string | undefined>;

export interface HealthOptions {
  probe: HealthProbe;
  log: Logger;
  /** A Check within this long of the last probe reuses its answer (default 1 s). */
  cacheMs?: number;
  /** How often the status is probed while a Watch is open (default 5 s). */
  watchIntervalMs?: number;
}

export interface HealthService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** Its lifecycle: stop() ends open Watch streams (shutdown). */
  component: Component;
}

let definition: grpc.ServiceDefinition | undefined;

function healthDefinition(): grpc.ServiceDefinition {
  if (definition) return definition;
  const pkg = protoLoader.loadSync(['grpc/health/v1/health.proto'], LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(pkg) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  definition = loaded.grpc.health.v1.Health.service;
  return definition;
}

interface CheckRequest { service: string }
interface CheckResponse { status: number }

export function healthService(opts: HealthOptions): HealthService {
  const cacheMs = opts.cacheMs ?? 1000;
  const watchIntervalMs = opts.watchIntervalMs ?? 5000;
  let last: { at: number; status: number } | undefined;
  let inflight: Promise<number> | undefined;
  /** Open Watch streams and the status each was last sent. */
  const watchers = new Map<grpc.ServerWritableStream<CheckRequest, CheckResponse>, number>();
  let timer: NodeJS.Timeout | undefined;

  const publish = (s: number): void => {
    for (const [call, sent] of watchers) {
      if (sent === s) continue;
      watchers.set(call, s);
      call.write({ status: s });
    }
  };

  const probe = (): Promise<number> => {
    inflight ??= opts.probe().then((reason) => {
      const status = reason === undefined ? SERVING : NOT_SERVING;
      if (reason !== undefined && last?.status !== NOT_SERVING) opts.log.warn({ reason }, 'gRPC health: NOT_SERVING (PostgreSQL unreachable)');
      if (reason === undefined && last?.status === NOT_SERVING) opts.log.info('gRPC health: SERVING again');
      last = { at: Date.now(), status };
      publish(status);
      return status;
    }, () => NOT_SERVING).finally(() => { inflight = undefined; });
    return inflight;
  };
  const status = (): Promise<number> => (last && Date.now() - last.at < cacheMs ? Promise.resolve(last.status) : probe());

  const startTimer = (): void => {
    if (timer) return;
    timer = setInterval(() => void probe(), watchIntervalMs);
    timer.unref();
  };
  const stopTimerIfIdle = (): void => {
    if (watchers.size > 0 || !timer) return;
    clearInterval(timer);
    timer = undefined;
  };

  const implementation: grpc.UntypedServiceImplementation = {
    Check: (call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>, cb: grpc.sendUnaryData<CheckResponse>) => {
      if (call.request.service !== '') {
        cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        return;
      }
      status().then((s) => cb(null, { status: s }), (err: unknown) => cb(err as Error));
    },
    Watch: (call: grpc.ServerWritableStream<CheckRequest, CheckResponse>) => {
      if (call.request.service !== '') {
        // grpc-go's answer: the status of an unknown service, and the stream stays open.
        call.write({ status: SERVICE_UNKNOWN });
        call.on('cancelled', () => call.end());
        return;
      }
      void status().then((s) => {
        if (call.cancelled) return;
        call.write({ status: s });
        watchers.set(call, s);
        startTimer();
      });
      const done = (): void => {
        watchers.delete(call);
        stopTimerIfIdle();
      };
      call.on('cancelled', done);
      call.on('close', done);
    },
  };

  return {
    definition: healthDefinition(),
    implementation,
    component: {
      services: {},
      start: async () => undefined,
      stop: async () => {
        for (const call of watchers.keys()) call.end();
        watchers.clear();
        stopTimerIfIdle();
      },
    },
  };
}
