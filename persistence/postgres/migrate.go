package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// migrationFiles are the schema migrations, applied in order of the number
// that starts their name (0001_snapshots.sql, 0002_...). A migration, once
// released, is never edited: changes go in a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations reads the embedded migrations, sorted by version.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", e.Name())
		}
		sql, err := fs.ReadFile(migrationFiles, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: version, name: e.Name(), sql: string(sql)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s have the same number", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// lockMigrations serialises migrations of one schema across processes (two
// nodes starting at once): every migration transaction takes this lock
// first, and holds it until it commits. The key is derived from the schema
// so that stores in different schemas (one per test) do not wait for each
// other.
const lockMigrations = `SELECT pg_advisory_xact_lock(hashtextextended('sluice.schema_migrations/' || coalesce(current_schema(), ''), 0))`

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    int         PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// migrate applies the migrations not yet recorded in schema_migrations,
// each in its own transaction together with its schema_migrations row, so
// a migration is either wholly applied and recorded or not at all.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *zap.Logger) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockMigrations); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, createMigrationsTable)
		return err
	})
	if err != nil {
		return err
	}
	for _, m := range ms {
		applied := false
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, lockMigrations); err != nil {
				return err
			}
			// Checked under the lock: another node may have just applied it.
			var done bool
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.version).Scan(&done)
			if err != nil || done {
				return err
			}
			log.Info(evMigrationStart, zap.Int("version", m.version), zap.String("name", m.name))
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version)
			applied = err == nil
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if applied {
			log.Info(evMigration, zap.Int("version", m.version), zap.String("name", m.name))
		}
	}
	return nil
}
