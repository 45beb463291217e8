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

-- The map is read off the partitions attached to kv_log, so applying this migration again after
-- its down step (which drops only the map) finds the partitions `pgetcd partitions add` made too.
-- The thirteen kv_log_<name> tables of the first migration are origin 'migration', any other
-- 'add'. A kind's key prefix: /registry/<kind>/, except endpoints and services, which Kubernetes
-- keeps under /registry/services/ (src/store/kind.ts).
INSERT INTO kv_partitions (kind, table_name, prefix, origin)
SELECT b.kind, b.table_name,
       convert_to(CASE b.kind WHEN 'endpoints' THEN '/registry/services/endpoints/'
                              WHEN 'services' THEN '/registry/services/specs/'
                              ELSE '/registry/' || b.kind || '/' END, 'UTF8'),
       CASE WHEN (b.kind, b.table_name) IN (
         ('events', 'kv_log_events'), ('leases', 'kv_log_leases'), ('pods', 'kv_log_pods'), ('configmaps', 'kv_log_configmaps'),
         ('secrets', 'kv_log_secrets'), ('endpoints', 'kv_log_endpoints'), ('endpointslices', 'kv_log_endpointslices'),
         ('minions', 'kv_log_nodes'), ('services', 'kv_log_services'), ('deployments', 'kv_log_deployments'),
         ('replicasets', 'kv_log_replicasets'), ('serviceaccounts', 'kv_log_serviceaccounts'), ('namespaces', 'kv_log_namespaces')
       ) THEN 'migration' ELSE 'add' END
FROM (
  SELECT c.relname::text AS table_name,
         replace(substring(pg_get_expr(c.relpartbound, c.oid) FROM '^FOR VALUES IN \(''(.*)''\)$'), '''''', '''') AS kind
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = 'kv_log'::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
) b
WHERE b.kind IS NOT NULL;

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
-- Not destructive: the partitions stay attached to kv_log and the up step reads the map off
-- them again (what is lost: origin 'auto' comes back as 'add', and created_at).
DROP TABLE kv_partitions;
DROP FUNCTION pgetcd_partitions_notify();
