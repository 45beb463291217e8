-- Up Migration

-- Watch is pushed, never polled: every statement that inserts into kv_log sends one
-- notification on channel pgetcd_kv carrying the highest revision it wrote. A write batch is
-- one INSERT, so one commit gives one notification however many keys it wrote. The payload is
-- a decimal revision (far below NOTIFY's 8000-byte limit). Notifications are only a nudge:
-- listeners always read kv_log after the last revision they delivered, so a notification lost
-- across a reconnect loses no event.
CREATE FUNCTION pgetcd_kv_log_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  top bigint;
BEGIN
  SELECT max(mod_revision) INTO top FROM new_rows;
  IF top IS NOT NULL THEN
    PERFORM pg_notify('pgetcd_kv', top::text);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER kv_log_notify
  AFTER INSERT ON kv_log
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION pgetcd_kv_log_notify();

-- Down Migration
DROP TRIGGER kv_log_notify ON kv_log;
DROP FUNCTION pgetcd_kv_log_notify();
