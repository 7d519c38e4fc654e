package postgres_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/persistence/postgres/pgtest"
)

// TestUpgradeDoesNotRewriteTheArchiveInOpen: migration 0002 must not
// stamp archived_at on every archived row in its transaction, inside Open
// (2M archived rows of 1.5 KB took ~39 s on a local server, past the 30 s
// `sluice serve` gave Open, so the node could never start). Checked
// without a clock: opening a database at schema version 1 leaves its
// archived rows as they are (same xmin), and the purge still finds them,
// dated by their last write.
func TestUpgradeDoesNotRewriteTheArchiveInOpen(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	v1, err := os.ReadFile("migrations/0001_snapshots.sql")
	if err != nil {
		t.Fatal(err)
	}
	// A database as the release before the purge left it.
	for _, q := range []string{
		string(v1),
		`CREATE TABLE schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO schema_migrations (version) VALUES (1)`,
		`INSERT INTO snapshots (kind, id, owner, version, live, state, updated_at)
		 SELECT 2, 'c' || g, 'f', 2, false, '\x00'::bytea, now() - interval '30 days' FROM generate_series(1, 100) g`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	xmins := func() string {
		t.Helper()
		var s string
		err := conn.QueryRow(ctx, `SELECT string_agg(xmin::text, ',' ORDER BY id) FROM snapshots WHERE NOT live`).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := xmins()

	s := open(t, dsn) // the upgrade
	defer s.Close()
	if after := xmins(); after != before {
		t.Errorf("Open rewrote every archived row (xmin changed): the upgrade's work grows with the archive, inside Open's 30 s")
	}
	// And the old archive is still purged, dated by its last writes, a
	// batch at a time: not with a cut-off before them, all of it after.
	purge := func(before time.Time) int {
		total := 0
		for range 100 {
			n, more, err := s.PurgeArchived(ctx, sluice.KindContract, before, 30)
			if err != nil {
				t.Fatal(err)
			}
			if total += n; !more {
				return total
			}
		}
		t.Fatal("PurgeArchived never said it was done")
		return 0
	}
	if n := purge(time.Now().Add(-31 * 24 * time.Hour)); n != 0 {
		t.Errorf("purged %d rows archived 30 days ago with a cut-off 31 days ago, want 0", n)
	}
	if n := purge(time.Now()); n != 100 {
		t.Errorf("purged %d of the 100 archived rows from before the upgrade", n)
	}
}
