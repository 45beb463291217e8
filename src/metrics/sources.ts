/**
 * What the metrics read when scraped: numbers other layers already keep (watch and writer
 * statistics, the key index, the last background sample). Reading them costs nothing until a
 * scrape; every field is optional so the app can wire parts as they start.
 */
export interface MetricSources {
  /** The revision watchers have been sent up to (the instance's view of the store). */
  revision?: () => number;
  compactRevision?: () => number;
  /** Live keys, when this instance keeps them in memory (the key index). */
  keys?: () => number | undefined;
  /** Write requests queued or in a commit. */
  pendingWrites?: () => number;
  watch?: () => WatchNumbers;
  /** The --read-endpoint standbys, when there are any. */
  standbys?: () => StandbyNumbers[];
  /** The cluster's active alarms: member ID (uint64, decimal) and etcd's AlarmType name. */
  alarms?: () => Array<{ memberId: string; alarm: string }>;
}

export interface StandbyNumbers {
  standby: string;
  up: boolean;
  lagMs: number;
  behindRevisions: number;
  served: number;
  behind: number;
  failed: number;
}

export interface WatchNumbers {
  streams: number;
  synced: number;
  unsynced: number;
  notifications: number;
  reconnects: number;
  reads: number;
  catchupReads: number;
  localDeliveries: number;
}

/** The background sample of the database (sizes need catalog queries: never inside a scrape). */
export interface DatabaseSample {
  dbSize: number;
  dbSizeInUse: number;
  /** Live keys (estimate from PostgreSQL statistics when there is no key index). */
  keys: number;
  compactRevision: number;
  revision: number;
  partitions: Array<{ partition: string; rows: number; bytes: number }>;
  connections: Array<{ state: string; count: number }>;
}
