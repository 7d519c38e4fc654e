package sluice

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

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
