-- Up Migration

-- The partition map: which kinds (resource types, see src/store/kind.ts) have a kv_log
-- partition of their own. Every other kind lives in kv_log_default. The rows of kv_log carry
-- their kind whatever the map says, so the map never changes what a write stores; it is what
-- `pgetcd partitions` reads and changes, what --auto-partition consults, and what a DBA reads
-- to see what is where. Changing it notifies channel pgetcd_partitions so every instance
-- reloads its copy.
CREATE TABLE kv_partitions (
  kind       text        PRIMARY KEY,           -- kv_log's list partition value
  table_name text        NOT NULL UNIQUE,       -- the partition (a table in this schema)
  prefix     bytea       NOT NULL,              -- the key prefix every key of the kind shares
  origin     text        NOT NULL CHECK (origin IN ('migration', 'add', 'auto')),
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kv_partitions IS 'pgetcd: kinds with a kv_log partition of their own (pgetcd partitions list)';

INSERT INTO kv_partitions (kind, table_name, prefix, origin)
SELECT p.kind, 'kv_log_' || p.name, convert_to(p.prefix, 'UTF8'), 'migration'
FROM (VALUES
    ('events', 'events', '/registry/events/'), ('leases', 'leases', '/registry/leases/'),
    ('pods', 'pods', '/registry/pods/'), ('configmaps', 'configmaps', '/registry/configmaps/'),
    ('secrets', 'secrets', '/registry/secrets/'), ('endpoints', 'endpoints', '/registry/services/endpoints/'),
    ('endpointslices', 'endpointslices', '/registry/endpointslices/'), ('nodes', 'minions', '/registry/minions/'),
    ('services', 'services', '/registry/services/specs/'), ('deployments', 'deployments', '/registry/deployments/'),
    ('replicasets', 'replicasets', '/registry/replicasets/'), ('serviceaccounts', 'serviceaccounts', '/registry/serviceaccounts/'),
    ('namespaces', 'namespaces', '/registry/namespaces/')
  ) AS p(name, kind, prefix)
WHERE to_regclass('kv_log_' || p.name) IS NOT NULL;

CREATE FUNCTION pgetcd_partitions_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('pgetcd_partitions', '');
  RETURN NULL;
END $$;

CREATE TRIGGER kv_partitions_notify
  AFTER INSERT OR UPDATE OR DELETE ON kv_partitions
  FOR EACH STATEMENT EXECUTE FUNCTION pgetcd_partitions_notify();

-- Down Migration
-- Destructive only for the map: the partitions themselves stay attached to kv_log.
DROP TABLE kv_partitions;
DROP FUNCTION pgetcd_partitions_notify();
