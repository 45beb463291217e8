-- Up Migration

-- The running pgetcd instances, so MemberList can name them all (clients that sync their
-- endpoints from MemberList, like clientv3's AutoSyncInterval, then balance over them).
-- A row says who registered; whether that instance still runs is decided by PostgreSQL itself:
-- each instance holds a session-level advisory lock (classid 1885824372 = 'pget', objid =
-- lock_key, two-int form) on a dedicated connection for as long as it runs, and a row whose lock
-- nobody holds is a dead instance (process killed, host or network gone: the server ends the
-- session, TCP keepalives bound the wait). No heartbeat writes, no WAL while idle.
CREATE TABLE members (
  id numeric(20, 0) PRIMARY KEY,            -- etcd member ID (uint64)
  name text NOT NULL,                       -- --name
  client_urls text[] NOT NULL,              -- --advertise-client-urls
  started_at timestamptz NOT NULL,          -- when the instance registered (database clock)
  lock_key integer NOT NULL CHECK (lock_key > 0)
);
COMMENT ON TABLE members IS 'pgetcd instances; live while a session holds advisory lock (1885824372, lock_key)';

-- Down Migration
DROP TABLE members;
