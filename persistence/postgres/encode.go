package postgres

import (
	"context"
	"encoding/binary"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice"
)

// The small-batch upsert (upsertUnnest) is the statement the single-answer
// load runs about a thousand times a second, with a few kilobytes of
// contract state each time. Through pgx's own parameter encoding every
// run grew its parameter buffer from 256 bytes by doubling, and boxed each
// array element in an interface: 45 KB and 83 allocations for eleven rows,
// a large share of all the node allocated per answer, and so of its
// garbage collections. Here the six arrays are written in PostgreSQL's
// binary array format, once and at their exact size, into a pooled buffer,
// and the prepared statement is run on the connection with those bytes.

// upsertStatement names upsertUnnest prepared on each connection.
const upsertStatement = "sluice_upsert_unnest"

// Element type OIDs of the arrays upsertUnnest takes (pg_type).
const (
	oidBool  = 16
	oidBytea = 17
	oidInt8  = 20
	oidInt2  = 21
	oidText  = 25
)

// binaryFormats asks for every parameter in the binary format.
var binaryFormats = []int16{1, 1, 1, 1, 1, 1}

// maxPooledParams is the largest parameter buffer kept for reuse; a rare
// larger batch allocates its own.
const maxPooledParams = 1 << 20

var paramBuffers = sync.Pool{New: func() any { return new([]byte) }}

// arrayHeader is the size of a one-dimensional array's header: dimensions,
// null flag, element type, length and lower bound.
const arrayHeader = 20

// upsertParams encodes rows as upsertUnnest's six arrays, appended to
// buf, and returns the grown buffer with the arrays as slices of it.
func upsertParams(buf []byte, rows []*sluice.Record) ([]byte, [6][]byte) {
	n := len(rows)
	size := 6*arrayHeader + n*(4+2+4+8+4+1+4+4+4)
	for _, r := range rows {
		size += len(r.ID) + len(r.Owner) + len(r.State)
	}
	buf = append(buf[:0], make([]byte, size)...)[:0]

	var params [6][]byte
	mark := func(i, start int) { params[i] = buf[start:len(buf):len(buf)] }
	header := func(oid uint32) {
		buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
		buf = binary.BigEndian.AppendUint32(buf, 0) // no nulls
		buf = binary.BigEndian.AppendUint32(buf, oid)
		buf = binary.BigEndian.AppendUint32(buf, uint32(n))
		buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
	}
	field := func(b []byte) {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
		buf = append(buf, b...)
	}
	text := func(s string) {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}

	start := len(buf)
	header(oidInt2)
	for _, r := range rows {
		buf = binary.BigEndian.AppendUint32(buf, 2)
		buf = binary.BigEndian.AppendUint16(buf, uint16(int16(r.Kind)))
	}
	mark(0, start)

	start = len(buf)
	header(oidText)
	for _, r := range rows {
		text(r.ID)
	}
	mark(1, start)

	start = len(buf)
	header(oidText)
	for _, r := range rows {
		text(r.Owner)
	}
	mark(2, start)

	start = len(buf)
	header(oidInt8)
	for _, r := range rows {
		buf = binary.BigEndian.AppendUint32(buf, 8)
		buf = binary.BigEndian.AppendUint64(buf, r.Version) // checked to fit an int8 by latest
	}
	mark(3, start)

	start = len(buf)
	header(oidBool)
	for _, r := range rows {
		buf = binary.BigEndian.AppendUint32(buf, 1)
		if r.Live {
			buf = append(buf, 1)
		} else {
			buf = append(buf, 0)
		}
	}
	mark(4, start)

	start = len(buf)
	header(oidBytea)
	for _, r := range rows {
		field(r.State) // a nil state is written as empty, never NULL
	}
	mark(5, start)
	return buf, params
}

// upsert writes rows with one statement, which is its own transaction.
func (s *Store) upsert(ctx context.Context, rows []*sluice.Record) error {
	if !s.prepared {
		return s.upsertUnprepared(ctx, rows)
	}
	bp := paramBuffers.Get().(*[]byte)
	buf, params := upsertParams(*bp, rows)
	err := s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		// Prepare is a map lookup once the connection has the statement.
		if _, err := c.Conn().Prepare(ctx, upsertStatement, upsertUnnest); err != nil {
			return err
		}
		res := c.Conn().PgConn().ExecPrepared(ctx, upsertStatement, params[:], binaryFormats, nil).Read()
		return res.Err
	})
	if cap(buf) <= maxPooledParams {
		*bp = buf[:0]
		paramBuffers.Put(bp)
	}
	return err
}

// upsertUnprepared is upsert through pgx's own parameter encoding, in
// whatever exec mode the DSN names.
func (s *Store) upsertUnprepared(ctx context.Context, rows []*sluice.Record) error {
	var (
		kinds    = make([]int16, len(rows))
		ids      = make([]string, len(rows))
		owners   = make([]string, len(rows))
		versions = make([]int64, len(rows))
		lives    = make([]bool, len(rows))
		states   = make([][]byte, len(rows))
	)
	for i, r := range rows {
		kinds[i], ids[i], owners[i] = int16(r.Kind), r.ID, r.Owner
		versions[i], lives[i], states[i] = int64(r.Version), r.Live, state(r)
	}
	_, err := s.pool.Exec(ctx, upsertUnnest, kinds, ids, owners, versions, lives, states)
	return err
}
