package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/persistence/postgres/pgtest"
)

// TestLiveRewritesStayHOT: 0001_snapshots.sql gives the table fillfactor
// 85 so that the rewrite of a live row (every challenge of every live
// contract) is a HOT update, which touches no index: none of the columns
// the indexes cover may change on such a rewrite. The purge's index
// (migration 0002) covers archived_at, which stays NULL on them; an index
// on updated_at, which every write sets, made none HOT.
func TestLiveRewritesStayHOT(t *testing.T) {
	ctx := context.Background()
	// One connection: the stats of the store's writes are that backend's,
	// flushed by pg_stat_force_next_flush() on the same backend.
	dsn := pgtest.DSN(t)
	if strings.Contains(dsn, "://") {
		dsn += "&pool_max_conns=1"
	} else {
		dsn += " pool_max_conns=1"
	}
	s := open(t, dsn)
	defer s.Close()
	// Few and small enough that every version fits on the table's first
	// page even if no pruning can run (another test's open snapshot).
	const rows, rewrites = 20, 2
	for v := 1; v <= 1+rewrites; v++ {
		var recs []sluice.Record
		for i := range rows {
			recs = append(recs, sluice.Record{Kind: sluice.KindContract, ID: fmt.Sprintf("c%d", i), Owner: "f",
				Version: uint64(v), Live: true, State: []byte(fmt.Sprintf("challenge %d", v))})
		}
		if err := s.Write(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Pool().Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	var upd, hot int64
	err := s.Pool().QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
		WHERE relname = 'snapshots' AND schemaname = current_schema()`).Scan(&upd, &hot)
	if err != nil {
		t.Fatal(err)
	}
	if upd != rows*rewrites {
		t.Fatalf("n_tup_upd = %d, want %d", upd, rows*rewrites)
	}
	if hot < upd/2 {
		t.Errorf("rewrites of live rows: %d updates, %d of them HOT; want most of them HOT (an indexed column changes on every write?)", upd, hot)
	}
}
