-- Archived records are purged once they are older than the node's
-- --archive-retention (Store.PurgeArchived): this partial index finds the
-- oldest archived rows of a kind without reading the live ones, and, like
-- snapshots_live for the live set, holds only the rows it is about.
-- updated_at is the time of a row's last write, which for an archived row
-- is when it was archived.
CREATE INDEX snapshots_archived ON snapshots (kind, updated_at) WHERE NOT live;
