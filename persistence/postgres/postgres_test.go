package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/persistence/postgres"
	"github.com/sluicehq/sluice/persistence/postgres/pgtest"
	"github.com/sluicehq/sluice/persistence/storetest"
)

func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() storetest.Store {
		dsn := pgtest.DSN(t)
		return func() storetest.Store { return open(t, dsn) }
	})
}

// TestConformanceWithoutPreparedStatements runs the suite with the exec
// mode a PgBouncer in transaction mode needs: the small-batch upsert then
// goes through pgx's own encoding, with no named statement.
func TestConformanceWithoutPreparedStatements(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() storetest.Store {
		dsn := pgtest.DSN(t)
		if strings.Contains(dsn, "://") {
			dsn += "&default_query_exec_mode=exec"
		} else {
			dsn += " default_query_exec_mode=exec"
		}
		return func() storetest.Store {
			s := open(t, dsn)
			if postgres.Prepared(s) {
				t.Fatal("exec mode exec: the store still prepares its upsert")
			}
			return s
		}
	})
	if !postgres.Prepared(open(t, pgtest.DSN(t))) {
		t.Fatal("default exec mode: the upsert is not the prepared one")
	}
}

// TestConcurrentOpen starts several stores on one empty schema at once, as
// nodes starting together would: the advisory lock lets exactly one of them
// apply each migration.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 6
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(context.Background(), dsn, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var versions, distinct int
	err := stores[0].Pool().QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&versions, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	if versions == 0 || versions != distinct {
		t.Errorf("schema_migrations: got %d rows for %d versions, want one row per version", versions, distinct)
	}
	// The store lives in the test's schema, not in public.
	var schema string
	err = stores[0].Pool().QueryRow(context.Background(),
		`SELECT table_schema FROM information_schema.tables WHERE table_name = 'snapshots' AND table_schema = current_schema()`).Scan(&schema)
	if err != nil {
		t.Errorf("snapshots table in the DSN's schema: %v", err)
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	// Nothing listens on port 1; this test needs no Postgres.
	_, err := postgres.Open(context.Background(), "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", nil)
	if !errors.Is(err, sluice.ErrUnavailable) {
		t.Errorf("Open on a closed port: got %v, want ErrUnavailable", err)
	}
}

func TestClosedIsUnavailable(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	s.Close()
	err := s.Write(context.Background(), []sluice.Record{{Kind: sluice.KindToken, ID: "t", Version: 1, Live: true}})
	if !errors.Is(err, sluice.ErrUnavailable) {
		t.Errorf("Write after Close: got %v, want ErrUnavailable", err)
	}
}

func TestVersionOutOfRange(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	defer s.Close()
	err := s.Write(context.Background(), []sluice.Record{{Kind: sluice.KindToken, ID: "t", Version: 1 << 63, Live: true}})
	if !errors.Is(err, sluice.ErrInvalid) {
		t.Errorf("Write with version 2^63: got %v, want ErrInvalid", err)
	}
}
