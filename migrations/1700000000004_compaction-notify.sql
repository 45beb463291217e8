-- Up Migration

-- A compaction writes no kv_log row, so the kv_log trigger sends nothing for it. Watchers must
-- still learn of it (a catch-up below the new compact revision is canceled with
-- compact_revision, as etcd does), and instances deliver their own commits without reading
-- kv_log, so a read cannot be counted on to bring it along: raising meta.compact_revision
-- notifies the same channel. The payload is not a revision ("compact:<revision>"): listeners
-- take any payload that is not a number as "read the log", which carries the compact revision.
CREATE FUNCTION pgetcd_compaction_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('pgetcd_kv', 'compact:' || NEW.compact_revision);
  RETURN NULL;
END $$;

CREATE TRIGGER meta_compaction_notify
  AFTER UPDATE OF compact_revision ON meta
  FOR EACH ROW WHEN (NEW.compact_revision > OLD.compact_revision)
  EXECUTE FUNCTION pgetcd_compaction_notify();

-- Down Migration
DROP TRIGGER meta_compaction_notify ON meta;
DROP FUNCTION pgetcd_compaction_notify();
