-- Archived records are purged once they are older than the node's
-- --archive-retention (Store.PurgeArchived). archived_at is when a row was
-- archived: NULL while it is live, set by the write that archives it
-- (Store.Write). A partial index over the archived rows finds the oldest
-- of a kind without reading the live ones.
--
-- Not an index on updated_at: every rewrite of a live row sets updated_at,
-- and a changed indexed column makes an update non-HOT (it would then
-- write every index of the table). archived_at stays NULL on those
-- rewrites, so they stay HOT.
ALTER TABLE snapshots ADD COLUMN archived_at timestamptz;
UPDATE snapshots SET archived_at = updated_at WHERE NOT live;
CREATE INDEX snapshots_archived ON snapshots (kind, archived_at) WHERE NOT live;
