-- Up Migration

-- etcd's alarms (AlarmRequest ACTIVATE/DEACTIVATE/GET, `etcdctl alarm list|disarm`), one row per
-- (member, alarm type) as etcd keeps them in its "alarm" bucket. They are cluster state, so they
-- live here where every instance sees them: NOSPACE (a write found the database past
-- --quota-backend-bytes) makes every instance refuse writes that add data until it is disarmed;
-- CORRUPT makes every instance refuse reads and writes. Changing the table notifies channel
-- pgetcd_alarms so every instance reloads its copy at once.
CREATE TABLE alarms (
  member_id  numeric(20, 0) NOT NULL,        -- etcd member ID (uint64) that raised it
  alarm      integer        NOT NULL CHECK (alarm > 0), -- etcdserverpb.AlarmType: 1 NOSPACE, 2 CORRUPT
  raised_at  timestamptz    NOT NULL DEFAULT now(),
  PRIMARY KEY (member_id, alarm)
);
COMMENT ON TABLE alarms IS 'pgetcd: active etcd alarms (etcdctl alarm list / disarm); 1 NOSPACE, 2 CORRUPT';

CREATE FUNCTION pgetcd_alarms_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('pgetcd_alarms', '');
  RETURN NULL;
END $$;

CREATE TRIGGER alarms_notify
  AFTER INSERT OR UPDATE OR DELETE ON alarms
  FOR EACH STATEMENT EXECUTE FUNCTION pgetcd_alarms_notify();

-- Down Migration
DROP TABLE alarms;
DROP FUNCTION pgetcd_alarms_notify();
