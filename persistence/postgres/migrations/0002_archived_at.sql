-- Archived records are purged once they are older than the node's
-- --archive-retention (Store.PurgeArchived). archived_at is when a row was
-- archived: NULL while it is live, set by each write of an archived
-- version (Store.Write). A partial index over the stamped rows finds the
-- oldest of a kind without reading the live ones.
--
-- Rows archived before this migration have no archived_at. Stamping them
-- here would rewrite the whole archive inside start-up; the purge stamps
-- them instead, a batch at a time, with their updated_at (the write that
-- archived them), found through the second index, which they leave as
-- they are stamped.
--
-- No index covers updated_at: every rewrite of a live row sets it, and a
-- changed indexed column (predicates included) makes an update non-HOT,
-- writing every index of the table. archived_at stays NULL and live stays
-- true on those rewrites, so they stay HOT.
ALTER TABLE snapshots ADD COLUMN archived_at timestamptz;
CREATE INDEX snapshots_archived ON snapshots (kind, archived_at) WHERE archived_at IS NOT NULL;
CREATE INDEX snapshots_unstamped ON snapshots (kind) WHERE NOT live AND archived_at IS NULL;
