-- One row per entity: its latest snapshot. Actors rewrite their row on
-- every change (latest version wins, see Store.Write), so this table is
-- update-heavy and never grows by more than one row per entity.
--
-- No schema prefix anywhere: the store runs in whatever schema the DSN's
-- search_path names (the tests use one schema per test).
CREATE TABLE snapshots (
    kind       smallint    NOT NULL,             -- sluice.RecordKind
    id         text        NOT NULL CHECK (id <> ''),
    owner      text        NOT NULL DEFAULT '',  -- owning farmer id for contracts
    version    bigint      NOT NULL,
    live       boolean     NOT NULL,             -- false: archived, kept for answers only
    state      bytea       NOT NULL,             -- opaque to the store
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
)
-- Leave room on each page so a rewrite of a row can stay on its page (a
-- HOT update, which does not touch the indexes: none of the columns the
-- indexes cover changes on an ordinary snapshot update).
WITH (fillfactor = 85);

-- Start-up loads the live records of one kind (WHERE kind = $1 AND live).
-- Archived rows accumulate for ever while live ones stay few, so a partial
-- index over the live rows only keeps that load an index scan over the
-- live set, however large the archive grows; and it stays small, because
-- archived rows leave it.
CREATE INDEX snapshots_live ON snapshots (kind) WHERE live;
