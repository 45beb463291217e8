import type { Component } from '../server/component.ts';
import type { ServerContext } from '../server/context.ts';

/** The Watch service: NOTIFY-fed change feed, in-memory hub, gRPC streams. (Being built.) */
export function createWatchComponent(_ctx: ServerContext): Component {
  return { services: {}, start: async () => undefined, stop: async () => undefined };
}
