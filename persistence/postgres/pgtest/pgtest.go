// Package pgtest gives each test its own empty schema on the Postgres named
// by SLUICE_TEST_POSTGRES, so tests can run in parallel on one database and
// leave nothing behind.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by DSN.
const (
	// EnvDSN names the Postgres to test against, e.g.
	// postgres://postgres@127.0.0.1:5432/test?sslmode=disable
	EnvDSN = "SLUICE_TEST_POSTGRES"
	// EnvRequire, set to 1 (in CI), turns a missing EnvDSN from a skip
	// into a failure.
	EnvRequire = "SLUICE_REQUIRE_POSTGRES"
)

// DSN returns a DSN for a fresh, empty schema on the test Postgres: the
// base DSN from SLUICE_TEST_POSTGRES with search_path set to a new schema
// sluice_test_<random hex>, which is dropped (CASCADE) when the test ends.
// Open stores with it after calling DSN, so that they are closed (test
// cleanups run last-in first-out) before the schema goes.
//
// Without SLUICE_TEST_POSTGRES the test is skipped, or fails if
// SLUICE_REQUIRE_POSTGRES=1. The returned DSN is self-contained: it can be
// handed to a child process, which sees the same schema until the test's
// cleanup drops it.
//
// Both DSN forms are handled: URL (postgres://...?k=v, search_path becomes
// a query parameter) and key=value ("host=... search_path=..." appended).
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDSN)
	if base == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal("SLUICE_REQUIRE_POSTGRES=1 but SLUICE_TEST_POSTGRES is not set")
		}
		t.Skip("set SLUICE_TEST_POSTGRES to a Postgres DSN to run this test")
	}
	schema := "sluice_test_" + hex.EncodeToString(randomBytes(t, 8))
	exec(t, base, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	t.Cleanup(func() {
		exec(t, base, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	dsn, err := withSearchPath(base, schema)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvDSN, err)
	}
	return dsn
}

// withSearchPath adds search_path=schema to a URL or key=value DSN,
// replacing any search_path already there.
func withSearchPath(dsn, schema string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", err
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	// Key=value form: a later key overrides an earlier one.
	return strings.TrimSpace(dsn) + " search_path=" + schema, nil
}

// exec runs one statement on a short-lived direct connection.
func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", EnvDSN, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return b
}
