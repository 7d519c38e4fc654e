package pgtest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestWithSearchPath(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?search_path=s&sslmode=disable"},
		{"postgresql://u@h/db", "postgresql://u@h/db?search_path=s"},
		{"postgres://u@h/db?search_path=old", "postgres://u@h/db?search_path=s"},
		{"host=h user=u dbname=db ", "host=h user=u dbname=db search_path=s"},
	}
	for _, tt := range tests {
		got, err := withSearchPath(tt.dsn, "s")
		if err != nil || got != tt.want {
			t.Errorf("withSearchPath(%q): got %q, %v, want %q", tt.dsn, got, err, tt.want)
		}
	}
}

func TestDSN(t *testing.T) {
	dsn := DSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(schema, "sluice_test_") {
		t.Errorf("current_schema(): got %q, want sluice_test_<hex>", schema)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE probe (x int)`); err != nil {
		t.Errorf("create a table in the test schema: %v", err)
	}
}
