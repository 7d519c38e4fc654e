package sluice

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/internal/plain"
	"github.com/sluicehq/sluice/proof"
)

// AppendJSON appends the contract's JSON encoding to b: byte for byte what
// encoding/json makes of it, without reflection. Every accepted proof
// writes a contract snapshot, and encoding/json's reflection was the
// largest cost of writing one (contract_json_test.go checks the two agree).
func (c *Contract) AppendJSON(b []byte) []byte {
	b = append(b, `{"farmer":`...)
	b = appendString(b, c.Farmer)
	b = append(b, `,"file_hash":"`...)
	b = hex.AppendEncode(b, c.FileHash[:])
	b = append(b, `","size":`...)
	b = strconv.AppendInt(b, c.Size, 10)
	if c.Seed != "" {
		b = append(b, `,"seed":`...)
		b = appendString(b, c.Seed)
	}
	if c.URL != "" {
		b = append(b, `,"url":`...)
		b = appendString(b, c.URL)
	}
	b = append(b, `,"tag":{"root":`...)
	b = appendHash(b, c.Tag.Root)
	b = append(b, `,"leaf_size":`...)
	b = strconv.AppendInt(b, int64(c.Tag.LeafSize), 10)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, c.Tag.Size, 10)
	b = append(b, `},"start":`...)
	b = appendTime(b, c.Start)
	b = append(b, `,"interval":`...)
	b = strconv.AppendInt(b, int64(c.Interval), 10)
	if c.Limit != 0 {
		b = append(b, `,"limit":`...)
		b = strconv.AppendInt(b, int64(c.Limit), 10)
	}
	if !c.End.IsZero() {
		b = append(b, `,"end":`...)
		b = appendTime(b, c.End)
	}
	if c.Quote != "" {
		b = append(b, `,"quote":`...)
		b = appendString(b, c.Quote)
	}
	if c.Source != "" {
		b = append(b, `,"source":`...)
		b = appendString(b, c.Source)
	}
	if c.Offset != 0 {
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, c.Offset, 10)
	}
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, int64(c.Index), 10)
	b = append(b, `,"challenge":{"seed":`...)
	b = appendHash(b, c.Challenge.Seed)
	b = append(b, `,"indices":[`...)
	for i, x := range c.Challenge.Indices {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(x), 10)
	}
	b = append(b, `]},"due":`...)
	b = appendTime(b, c.Due)
	b = append(b, `,"answered":`...)
	b = strconv.AppendBool(b, c.Answered)
	b = append(b, `,"proofs":`...)
	b = strconv.AppendInt(b, c.Proofs, 10)
	b = append(b, `,"state":`...)
	b = strconv.AppendUint(b, uint64(c.State), 10)
	if !c.Closed.IsZero() {
		b = append(b, `,"closed":`...)
		b = appendTime(b, c.Closed)
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, c.Version, 10)
	return append(b, '}')
}

// appendString appends s as a JSON string. Plain ASCII is copied as it is;
// anything encoding/json would escape goes through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string: cannot fail
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendHash(b []byte, h proof.Hash) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, h[:])
	return append(b, '"')
}

// appendTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds). Years outside 0-9999, which MarshalJSON refuses, do not
// occur in a contract; they are appended the same way.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// DecodeContract decodes a contract snapshot. The form AppendJSON writes
// is read in one pass; anything else (older snapshots, escaped strings)
// goes through encoding/json, which gives the same contract on every input
// the one-pass reader takes. Start-up decodes every live contract, and
// encoding/json's reflection was most of re-arming a million of them.
func DecodeContract(b []byte) (Contract, error) {
	var c Contract
	if c.readFast(b) {
		return c, nil
	}
	c = Contract{}
	err := json.Unmarshal(b, &c)
	return c, err
}

// readFast reads exactly the layout AppendJSON writes, with optional
// members in their places. It reports false on anything else.
func (c *Contract) readFast(b []byte) bool {
	r := reader{b: b}
	ok := r.lit(`{"farmer":`) && r.str(&c.Farmer) &&
		r.lit(`,"file_hash":`) && r.text(&c.FileHash) &&
		r.lit(`,"size":`) && r.int64(&c.Size) &&
		(!r.opt(`,"seed":`) || r.str(&c.Seed)) &&
		(!r.opt(`,"url":`) || r.str(&c.URL)) &&
		r.lit(`,"tag":{"root":`) && r.hash(&c.Tag.Root) &&
		r.lit(`,"leaf_size":`) && r.int(&c.Tag.LeafSize) &&
		r.lit(`,"size":`) && r.int64(&c.Tag.Size) &&
		r.lit(`},"start":`) && r.time(&c.Start) &&
		r.lit(`,"interval":`) && r.int64((*int64)(&c.Interval)) &&
		(!r.opt(`,"limit":`) || r.int(&c.Limit)) &&
		(!r.opt(`,"end":`) || r.time(&c.End)) &&
		(!r.opt(`,"quote":`) || r.str(&c.Quote)) &&
		(!r.opt(`,"source":`) || r.str(&c.Source)) &&
		(!r.opt(`,"offset":`) || r.int64(&c.Offset)) &&
		r.lit(`,"index":`) && r.int(&c.Index) &&
		r.lit(`,"challenge":{"seed":`) && r.hash((*proof.Hash)(&c.Challenge.Seed)) &&
		r.lit(`,"indices":[`) && r.indices(&c.Challenge.Indices) &&
		r.lit(`},"due":`) && r.time(&c.Due) &&
		r.lit(`,"answered":`) && r.bool(&c.Answered) &&
		r.lit(`,"proofs":`) && r.int64(&c.Proofs) &&
		r.lit(`,"state":`) && r.state(&c.State) &&
		(!r.opt(`,"closed":`) || r.time(&c.Closed)) &&
		r.lit(`,"version":`) && r.uint64(&c.Version) &&
		r.lit(`}`)
	return ok && r.i == len(b)
}

// reader is a cursor over one snapshot for readFast.
type reader struct {
	b []byte
	i int
}

// lit consumes s.
func (r *reader) lit(s string) bool {
	if len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		return false
	}
	r.i += len(s)
	return true
}

// opt consumes s if it is next.
func (r *reader) opt(s string) bool { return r.lit(s) }

// quoted returns the contents of a plain string: no escapes, control
// characters or non-ASCII bytes (encoding/json has rules for those).
func (r *reader) quoted() ([]byte, bool) {
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		return nil, false
	}
	end := plain.Run(r.b, r.i+1)
	if end == len(r.b) || r.b[end] != '"' {
		return nil, false
	}
	s := r.b[r.i+1 : end]
	r.i = end + 1
	return s, true
}

func (r *reader) str(dst *string) bool {
	s, ok := r.quoted()
	if ok {
		*dst = string(s)
	}
	return ok
}

func (r *reader) text(dst *FileHash) bool {
	s, ok := r.quoted()
	return ok && dst.UnmarshalText(s) == nil
}

func (r *reader) hash(dst *proof.Hash) bool {
	start := r.i
	_, ok := r.quoted()
	return ok && dst.UnmarshalJSON(r.b[start:r.i]) == nil
}

func (r *reader) time(dst *time.Time) bool {
	start := r.i
	_, ok := r.quoted()
	return ok && dst.UnmarshalJSON(r.b[start:r.i]) == nil
}

func (r *reader) bool(dst *bool) bool {
	switch {
	case r.lit("true"):
		*dst = true
	case r.lit("false"):
		*dst = false
	default:
		return false
	}
	return true
}

// digits consumes a JSON integer, -?(0|[1-9][0-9]*), and returns its
// magnitude, or false if it has no digits, a leading zero, a fraction or
// an exponent, or does not fit in max.
func (r *reader) digits(max uint64) (v uint64, neg, ok bool) {
	if r.i < len(r.b) && r.b[r.i] == '-' {
		neg = true
		r.i++
	}
	start := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		d := uint64(r.b[r.i] - '0')
		if v > (max-d)/10 {
			return 0, false, false
		}
		v = v*10 + d
		r.i++
	}
	n := r.i - start
	if n == 0 || (n > 1 && r.b[start] == '0') {
		return 0, false, false
	}
	if r.i < len(r.b) && (r.b[r.i] == '.' || r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		return 0, false, false
	}
	return v, neg, true
}

func (r *reader) int64(dst *int64) bool {
	v, neg, ok := r.digits(1 << 63)
	switch {
	case !ok:
		return false
	case neg:
		*dst = int64(-v) // -(1<<63) wraps to itself: the minimum
	case v == 1<<63:
		return false
	default:
		*dst = int64(v)
	}
	return true
}

func (r *reader) int(dst *int) bool {
	var v int64
	if !r.int64(&v) {
		return false
	}
	*dst = int(v)
	return true
}

func (r *reader) uint64(dst *uint64) bool {
	v, neg, ok := r.digits(math.MaxUint64)
	if !ok || neg { // encoding/json refuses even -0 for unsigned types
		return false
	}
	*dst = v
	return true
}

func (r *reader) state(dst *ContractState) bool {
	v, neg, ok := r.digits(math.MaxUint8)
	if !ok || neg {
		return false
	}
	*dst = ContractState(v)
	return true
}

// indices consumes the rest of an array of uint32, through its ']'.
func (r *reader) indices(dst *[]uint32) bool {
	out := []uint32{}
	if !r.lit("]") {
		for {
			v, neg, ok := r.digits(math.MaxUint32)
			if !ok || neg {
				return false
			}
			out = append(out, uint32(v))
			if r.lit("]") {
				break
			}
			if !r.lit(",") {
				return false
			}
		}
	}
	*dst = out
	return true
}
