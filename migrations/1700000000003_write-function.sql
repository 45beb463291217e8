-- Up Migration

-- One write batch in one statement, for batches the writer could evaluate without reading
-- (it knows every key's metadata from its in-memory index; see docs/design.md, "Writes").
-- The caller says which revision its evaluation started from (p_expected). The function takes
-- the meta row lock first; if the store has moved on since (another instance wrote), or a lease
-- the batch attaches keys to is gone, it raises SQLSTATE PGE01 before writing anything and the
-- writer redoes the batch the reading way. Being VOLATILE plpgsql, every statement after the
-- lock runs on a fresh snapshot, so it sees every batch committed before it took the lock.
-- p_read names keys whose stored values the batch's answers show (a failed compare-and-swap
-- answering with the current object, prev_kv): they are read after the lock, before the writes,
-- and returned in that order. Called in autocommit: one message, one round trip, one commit.
-- Every key in p_read exists (the index said so, and the revision check proved the index right).
CREATE FUNCTION pgetcd_write(
  p_expected bigint, p_revision bigint,
  p_mod bigint[], p_sub integer[], p_create bigint[], p_prev bigint[], p_version bigint[],
  p_lease bigint[], p_deleted boolean[], p_kind text[], p_key bytea[], p_value bytea[],
  p_final boolean[], p_leases bigint[], p_read bytea[]
) RETURNS bytea[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  vals bytea[] := '{}';
BEGIN
  UPDATE meta SET revision = p_revision WHERE id = 1 AND revision = p_expected;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pgetcd: the store is no longer at revision %', p_expected USING ERRCODE = 'PGE01';
  END IF;
  IF cardinality(p_leases) > 0
     AND (SELECT count(*) FROM leases WHERE id = ANY (p_leases)) <> cardinality(p_leases) THEN
    RAISE EXCEPTION 'pgetcd: a lease of the batch no longer exists' USING ERRCODE = 'PGE01';
  END IF;
  IF cardinality(p_read) > 0 THEN
    SELECT array_agg(c.value ORDER BY r.n) INTO vals
    FROM unnest(p_read) WITH ORDINALITY AS r(key, n) JOIN kv_current c ON c.key = r.key;
    IF cardinality(vals) IS DISTINCT FROM cardinality(p_read) THEN
      RAISE EXCEPTION 'pgetcd: a key the batch reads is gone' USING ERRCODE = 'PGE01';
    END IF;
  END IF;

  INSERT INTO kv_log (mod_revision, sub, create_revision, prev_revision, version, lease, deleted, kind, key, value)
  SELECT * FROM unnest(p_mod, p_sub, p_create, p_prev, p_version, p_lease, p_deleted, p_kind, p_key, p_value);

  -- kv_current takes each key's last row of the batch.
  INSERT INTO kv_current (mod_revision, create_revision, version, lease, key, value)
  SELECT s.mod_revision, s.create_revision, s.version, s.lease, s.key, s.value
  FROM unnest(p_mod, p_create, p_version, p_lease, p_key, p_value, p_final, p_deleted)
    AS s(mod_revision, create_revision, version, lease, key, value, final, deleted)
  WHERE s.final AND NOT s.deleted
  ON CONFLICT (key) DO UPDATE SET mod_revision = EXCLUDED.mod_revision, create_revision = EXCLUDED.create_revision,
    version = EXCLUDED.version, lease = EXCLUDED.lease, value = EXCLUDED.value;

  IF true = ANY (p_deleted) THEN
    DELETE FROM kv_current c
    USING unnest(p_key, p_final, p_deleted) AS s(key, final, deleted)
    WHERE s.final AND s.deleted AND c.key = s.key;
  END IF;
  RETURN vals;
END $$;

-- Down Migration
DROP FUNCTION pgetcd_write(bigint, bigint, bigint[], integer[], bigint[], bigint[], bigint[], bigint[], boolean[], text[], bytea[], bytea[], boolean[], bigint[], bytea[]);
