-- Up Migration

-- pgetcd keeps etcd's revisioned key space in three tables:
--   meta        one row: the store's current revision, its compact revision and the cluster id.
--               Every write transaction locks this row first, so revisions are gapless and
--               commit order equals revision order, even with several pgetcd instances.
--   kv_log      every version of every key (the MVCC history), append-only until compaction.
--   kv_current  the live version of each key (no tombstones): head reads and counts.
-- kv_log is LIST-partitioned by `kind`, the resource type taken from the key
-- (`/registry/pods/ns/name` -> 'pods'; `/registry/<group.with.dots>/<plural>/...` ->
-- '<group>/<plural>'; anything else -> ''), so a Kubernetes list of one type touches one
-- partition and a DBA can see, vacuum and size each type apart. Keys and values are bytea:
-- etcd keys are arbitrary bytes, and bytea orders them bytewise exactly as etcd does.

CREATE TABLE meta (
  id               smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  revision         bigint   NOT NULL,
  compact_revision bigint   NOT NULL,
  cluster_id       bigint   NOT NULL
);
COMMENT ON TABLE meta IS 'pgetcd: one row; writers lock it (SELECT ... FOR UPDATE) to serialise revisions';
-- An empty etcd store is at revision 1.
INSERT INTO meta (revision, compact_revision, cluster_id)
VALUES (1, 0, ((random() * 2147483647)::bigint << 32) | (random() * 4294967295)::bigint);

-- Physical compaction progress lives apart from meta so that deleting history never holds the
-- row every writer locks. Compaction deletes what lies in (physical_revision, meta.compact_revision].
CREATE TABLE compaction (
  id                smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  physical_revision bigint   NOT NULL
);
INSERT INTO compaction (physical_revision) VALUES (0);

CREATE TABLE kv_log (
  mod_revision    bigint   NOT NULL,  -- revision of the write that produced this version
  sub             integer  NOT NULL,  -- position inside that revision (order of ops in a txn)
  create_revision bigint   NOT NULL,
  prev_revision   bigint   NOT NULL,  -- mod_revision of this key's previous row, 0 if none
  version         bigint   NOT NULL,  -- 0 on a tombstone
  lease           bigint   NOT NULL,
  deleted         boolean  NOT NULL,  -- tombstone: the key was deleted at mod_revision
  kind            text     NOT NULL,
  key             bytea    NOT NULL,
  value           bytea    NOT NULL,
  -- Historical reads seek (key, mod_revision <= R); the partition column has to be part of
  -- any unique index, and kind is a function of key, so it goes last.
  PRIMARY KEY (key, mod_revision, kind)
) PARTITION BY LIST (kind);
COMMENT ON TABLE kv_log IS 'pgetcd: MVCC history, one row per key version or tombstone';
-- Watchers and replays read "everything after revision R" in revision order.
CREATE INDEX kv_log_revision ON kv_log (mod_revision, sub);

-- kv_current is deliberately not partitioned: it is the hot table of every write (one upsert
-- per key per batch) and of every head read, and a plain B-tree on key already makes a
-- Kubernetes list of one resource type a single contiguous index range. Partitioning it
-- would make every generic plan open and lock all partitions for no pruning benefit.
CREATE TABLE kv_current (
  key             bytea  PRIMARY KEY,  -- point reads and ordered range scans by key
  mod_revision    bigint NOT NULL,
  create_revision bigint NOT NULL,
  version         bigint NOT NULL,
  lease           bigint NOT NULL,
  value           bytea  NOT NULL
) WITH (fillfactor = 80);  -- rows are updated in place on every write: room for HOT updates
COMMENT ON TABLE kv_current IS 'pgetcd: the live version of every key';
-- Lease revoke and expiry find the keys attached to a lease; most keys have none.
CREATE INDEX kv_current_lease ON kv_current (lease) WHERE lease <> 0;

-- Partitions for the resource types a Kubernetes control plane writes most. The list value is
-- the kind as derived from the key; the table name is the resource's usual name
-- (nodes are stored under /registry/minions, endpoints under /registry/services/endpoints).
DO $$
DECLARE
  p record;
BEGIN
  FOR p IN SELECT * FROM (VALUES
      ('events', 'events'), ('leases', 'leases'), ('pods', 'pods'),
      ('configmaps', 'configmaps'), ('secrets', 'secrets'), ('endpoints', 'endpoints'),
      ('endpointslices', 'endpointslices'), ('nodes', 'minions'), ('services', 'services'),
      ('deployments', 'deployments'), ('replicasets', 'replicasets'),
      ('serviceaccounts', 'serviceaccounts'), ('namespaces', 'namespaces')
    ) AS t(name, kind)
  LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF kv_log FOR VALUES IN (%L)', 'kv_log_' || p.name, p.kind);
  END LOOP;
END $$;
CREATE TABLE kv_log_default PARTITION OF kv_log DEFAULT;

CREATE TABLE leases (
  id         bigint      PRIMARY KEY,
  ttl        bigint      NOT NULL,  -- granted TTL in seconds
  expires_at timestamptz NOT NULL,  -- database clock, so every instance agrees
  granted_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE leases IS 'pgetcd: etcd leases; keys point at them through kv_current.lease';
-- The expiry loop asks for the leases that are due.
CREATE INDEX leases_expires_at ON leases (expires_at);

-- Down Migration
DROP TABLE leases;
DROP TABLE kv_current;
DROP TABLE kv_log;
DROP TABLE compaction;
DROP TABLE meta;
