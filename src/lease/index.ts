import type { Component } from '../server/component.ts';
import type { ServerContext } from '../server/context.ts';

/** The Lease service: grant/revoke through the writer, keep-alive batching, expiry. (Being built.) */
export function createLeaseComponent(_ctx: ServerContext): Component {
  return { services: {}, start: async () => undefined, stop: async () => undefined };
}
