-- Up Migration

-- Storage settings chosen for pgetcd's access pattern (see docs/design.md, "For DBAs").

-- meta is one row updated by every write transaction (one UPDATE per batch). The revision
-- column is not indexed, so each update is HOT; half-empty pages keep the chain prunable in
-- place and the table at one page.
ALTER TABLE meta SET (fillfactor = 50, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0);

-- kv_current: every write to a key updates its row; most updates are HOT (fillfactor 80), the
-- rest leave dead index entries. Vacuum it after 2 % of rows changed rather than 20 %, so
-- list scans stay dense on a busy cluster.
ALTER TABLE kv_current SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- leases: keep-alives move expires_at (indexed, for the expiry scan), so renewals are not HOT.
ALTER TABLE leases SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05);

-- kv_log partitions are append-only until compaction deletes old versions in bulk; the
-- defaults (vacuum after 20 % dead, insert-triggered vacuum after 20 % new rows) fit that.

-- Down Migration
ALTER TABLE meta RESET (fillfactor, autovacuum_vacuum_threshold, autovacuum_vacuum_scale_factor);
ALTER TABLE kv_current RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor);
ALTER TABLE leases RESET (fillfactor, autovacuum_vacuum_scale_factor);
