import type { Component } from './component.ts';
import type { ServerContext } from './context.ts';

/** Maintenance (Status, Alarm, Hash...) and Cluster (MemberList...). (Being built.) */
export function createMaintenanceComponent(_ctx: ServerContext): Component {
  return { services: {}, start: async () => undefined, stop: async () => undefined };
}
