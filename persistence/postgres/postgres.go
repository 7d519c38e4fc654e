// Package postgres is the PostgreSQL snapshot store (pgx/v5): a connection
// pool, embedded schema migrations, and batched latest-version-wins writes.
// It implements actors.Store; persistence/storetest checks it behaves like
// persistence/embedded.
//
// The store works in the schema that the DSN's search_path selects (the
// default is "public"); nothing in it names a schema.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice"
)

// Pool defaults, applied unless the DSN says otherwise.
const (
	// defaultMaxConns leaves room for the snapshot writer's flushers, the
	// start-up scans and the HTTP reads at once (pgx's default is
	// max(4, NumCPU)).
	defaultMaxConns = 16
	// defaultConnectTimeout bounds dialling and the start-up handshake of
	// each new connection (pgx's default is no timeout).
	defaultConnectTimeout = 5 * time.Second
)

// copyThreshold is the batch size from which Write switches from one
// multi-row unnest() upsert to COPY into a staging table plus a merge: COPY
// costs an extra round trip or two but encodes and parses faster, which
// wins on big batches (go-stack.md §3: 98 k vs 111 k rows/s).
const copyThreshold = 512

// Event names logged by this package.
const (
	evOpened         = "store.opened"
	evMigration      = "store.migration_applied"
	evMigrationStart = "store.migration_started"
)

// Store is the PostgreSQL snapshot store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	log  *zap.Logger
	// prepared: the connections keep prepared statements (pgx's default
	// exec mode), so the small-batch upsert runs as one, hand-encoded. A
	// DSN that names another default_query_exec_mode (for PgBouncer in
	// transaction mode, where a statement prepared on one server
	// connection may be run on another) gets pgx's own encoding instead.
	prepared bool
}

// Open connects to the database named by dsn (a URL or key=value string,
// as pgx accepts), checks that it answers, and applies any pending schema
// migrations. ctx bounds the whole of Open. Unless the DSN sets them, the
// pool gets at most 16 connections, a 5 s connect timeout and
// application_name "sluice". If the database cannot be reached, the error
// wraps sluice.ErrUnavailable.
//
// Queries carry no server-side statement_timeout: every call is bounded by
// its ctx (the snapshot writer gives each batch its own deadline).
func Open(ctx context.Context, dsn string, log *zap.Logger) (*Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "sluice"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: connect to %s: %w", cfg.ConnConfig.Host, classify(err))
	}
	if err := migrate(ctx, pool, log); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: migrate: %w", classify(err))
	}
	log.Info(evOpened,
		zap.String("host", cfg.ConnConfig.Host),
		zap.String("database", cfg.ConnConfig.Database),
		zap.Int32("max_conns", cfg.MaxConns))
	return &Store{pool: pool, log: log,
		prepared: cfg.ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement}, nil
}

// Pool returns the store's connection pool, for benchmarks and for other
// packages that need their own tables in the same database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// The upsert keeps the row with the highest version: a conflicting row is
// only overwritten by a newer version, so retried and reordered writes are
// harmless. Both write paths end in it. archived_at is set by each write
// of an archived version, as the embedded store dates its archive; a live
// row has none, so its rewrites stay HOT (migration 0002).
const upsertTail = `
ON CONFLICT (kind, id) DO UPDATE SET
	owner = EXCLUDED.owner, version = EXCLUDED.version, live = EXCLUDED.live,
	state = EXCLUDED.state, updated_at = EXCLUDED.updated_at, archived_at = EXCLUDED.archived_at
WHERE snapshots.version < EXCLUDED.version`

// insertColumns is the INSERT half of both write paths.
const insertColumns = `INSERT INTO snapshots (kind, id, owner, version, live, state, updated_at, archived_at)
SELECT kind, id, owner, version, live, state, now(), CASE WHEN live THEN NULL ELSE now() END`

const upsertUnnest = insertColumns + `
FROM unnest($1::int2[], $2::text[], $3::text[], $4::int8[], $5::bool[], $6::bytea[])
	AS u(kind, id, owner, version, live, state)` + upsertTail

// The staging table for big batches: a per-session temporary table, created
// on a connection's first big batch and emptied by every commit, so there
// is no catalog churn per batch.
const (
	stageTable  = "sluice_snapshots_stage"
	createStage = `CREATE TEMP TABLE IF NOT EXISTS ` + stageTable + ` (
	kind smallint, id text, owner text, version bigint, live boolean, state bytea
) ON COMMIT DELETE ROWS`
	mergeStage = insertColumns + `
FROM pg_temp.` + stageTable + ` ORDER BY kind, id` + upsertTail
)

var stageColumns = []string{"kind", "id", "owner", "version", "live", "state"}

// Write commits recs in one transaction (see actors.Store). A record whose
// version is not newer than the stored one is skipped. Of several records
// with the same kind and id in recs, only the highest version is written
// (Postgres cannot change one row twice in one INSERT ... ON CONFLICT).
// Rows are written in (kind, id) order, so concurrent Writes lock shared
// rows in the same order and cannot deadlock each other.
//
// Batches under 512 rows go in one unnest() upsert; bigger ones are COPYed
// into a temporary table and merged. Errors from a failing connection or
// server, and ctx deadlines, wrap sluice.ErrUnavailable.
func (s *Store) Write(ctx context.Context, recs []sluice.Record) error {
	if len(recs) == 0 {
		return nil
	}
	rows, err := latest(recs)
	if err != nil {
		return fmt.Errorf("postgres store: write: %w", err)
	}
	if len(rows) < copyThreshold {
		err = s.upsert(ctx, rows)
	} else {
		err = s.copyMerge(ctx, rows)
	}
	if err != nil {
		return fmt.Errorf("postgres store: write %d records: %w", len(rows), classify(err))
	}
	return nil
}

// latest returns recs sorted by (kind, id), keeping only the highest
// version of each (the first of equal versions, as the embedded store
// keeps). recs itself is left as it is.
func latest(recs []sluice.Record) ([]*sluice.Record, error) {
	rows := make([]*sluice.Record, len(recs))
	for i := range recs {
		if recs[i].Version > math.MaxInt64 {
			return nil, fmt.Errorf("%s %q: version %d does not fit a bigint: %w",
				recs[i].Kind, recs[i].ID, recs[i].Version, sluice.ErrInvalid)
		}
		rows[i] = &recs[i]
	}
	slices.SortStableFunc(rows, func(a, b *sluice.Record) int {
		return cmp.Or(
			cmp.Compare(a.Kind, b.Kind),
			strings.Compare(a.ID, b.ID),
			cmp.Compare(b.Version, a.Version), // highest version first
		)
	})
	return slices.CompactFunc(rows, func(a, b *sluice.Record) bool {
		return a.Kind == b.Kind && a.ID == b.ID
	}), nil
}

// state returns r's state, never nil (pgx would send nil as NULL).
func state(r *sluice.Record) []byte {
	if r.State == nil {
		return []byte{}
	}
	return r.State
}

// copyMerge COPYs rows into the session's staging table and merges them
// into snapshots, in one transaction.
func (s *Store) copyMerge(ctx context.Context, rows []*sluice.Record) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, createStage); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", stageTable}, stageColumns,
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				r := rows[i]
				return []any{int16(r.Kind), r.ID, r.Owner, int64(r.Version), r.Live, state(r)}, nil
			}))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, mergeStage)
		return err
	})
}

// Live calls fn for every live record of kind, streaming rows from one
// query as they arrive (see actors.Store). ctx is checked before each
// record. If fn fails, the rest of the result is read and discarded before
// Live returns fn's error. fn may use the store (the scan holds only one of
// the pool's connections).
func (s *Store) Live(ctx context.Context, kind sluice.RecordKind, fn func(sluice.Record) error) error {
	err := s.live(ctx, kind, fn)
	if err != nil {
		return fmt.Errorf("postgres store: live %s: %w", kind, err)
	}
	return nil
}

func (s *Store) live(ctx context.Context, kind sluice.RecordKind, fn func(sluice.Record) error) error {
	rows, err := s.pool.Query(ctx, `SELECT id, owner, version, state FROM snapshots WHERE kind = $1 AND live`, int16(kind))
	if err != nil {
		return classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := sluice.Record{Kind: kind, Live: true}
		var version int64
		if err := rows.Scan(&r.ID, &r.Owner, &version, &r.State); err != nil {
			return err
		}
		r.Version = uint64(version)
		if err := fn(r); err != nil {
			return err
		}
	}
	return classify(rows.Err())
}

// purgeArchived deletes the oldest archived rows of a kind archived before
// a time. The outer conditions are checked again on the row as it is when
// it is deleted, so a row made live again meanwhile stays (a live row has
// no archived_at).
const purgeArchived = `DELETE FROM snapshots WHERE (kind, id) IN (
	SELECT kind, id FROM snapshots WHERE kind = $1 AND archived_at < $2
	ORDER BY archived_at LIMIT $3)
AND archived_at < $2`

// stampArchived gives rows archived before migration 0002 their
// archived_at: the time of their last write, which archived them.
const stampArchived = `UPDATE snapshots SET archived_at = updated_at WHERE (kind, id) IN (
	SELECT kind, id FROM snapshots WHERE kind = $1 AND NOT live AND archived_at IS NULL LIMIT $2)
AND NOT live AND archived_at IS NULL`

// PurgeArchived deletes at most limit archived records of kind that were
// archived before before, oldest first, and returns how many it deleted
// and whether more may remain (it deleted limit). The archive time is the
// server's clock at the last write of the archived row. Live records are
// never touched. Errors from a failing connection or server wrap
// sluice.ErrUnavailable.
//
// Rows archived before migration 0002 are first given their archive time,
// limit rows a call (such a call purges nothing and says more remain).
func (s *Store) PurgeArchived(ctx context.Context, kind sluice.RecordKind, before time.Time, limit int) (int, bool, error) {
	tag, err := s.pool.Exec(ctx, stampArchived, int16(kind), limit)
	if err != nil {
		return 0, false, fmt.Errorf("postgres store: stamp archived %s: %w", kind, classify(err))
	}
	if tag.RowsAffected() > 0 {
		return 0, true, nil
	}
	tag, err = s.pool.Exec(ctx, purgeArchived, int16(kind), before, limit)
	if err != nil {
		return 0, false, fmt.Errorf("postgres store: purge archived %s: %w", kind, classify(err))
	}
	n := int(tag.RowsAffected())
	return n, n >= limit, nil
}

// Get returns the record, live or archived, or an error wrapping
// sluice.ErrNotFound.
func (s *Store) Get(ctx context.Context, kind sluice.RecordKind, id string) (sluice.Record, error) {
	r := sluice.Record{Kind: kind, ID: id}
	var version int64
	err := s.pool.QueryRow(ctx, `SELECT owner, version, live, state FROM snapshots WHERE kind = $1 AND id = $2`,
		int16(kind), id).Scan(&r.Owner, &version, &r.Live, &r.State)
	if errors.Is(err, pgx.ErrNoRows) {
		return sluice.Record{}, fmt.Errorf("%s %q: %w", kind, id, sluice.ErrNotFound)
	}
	if err != nil {
		return sluice.Record{}, fmt.Errorf("postgres store: get %s %q: %w", kind, id, classify(err))
	}
	r.Version = uint64(version)
	return r, nil
}

// classify wraps sluice.ErrUnavailable around errors that say the database
// cannot serve right now, as opposed to errors in what was asked of it:
//   - anything that is not an error reported by the server (dial and
//     network failures, a closed pool, a ctx deadline), except a cancelled
//     ctx, which is the caller giving up;
//   - server errors of the classes connection exception (08), transaction
//     rollback (40: deadlock, serialization), insufficient resources (53:
//     too many connections, disk full), operator intervention (57:
//     shutdown, statement cancelled) and a read-only server (25006, a
//     standby after failover).
//
// Other server errors (constraint violations, bad data) pass through.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 {
		switch pgErr.Code[:2] {
		case "08", "40", "53", "57":
		default:
			if pgErr.Code != "25006" {
				return err
			}
		}
	}
	return fmt.Errorf("%w: %w", sluice.ErrUnavailable, err)
}
