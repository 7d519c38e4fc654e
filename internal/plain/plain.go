// Package plain finds the end of a run of plain JSON string bytes eight
// bytes at a time. Proofs arrive as JSON strings of base64 kilobytes long,
// and the node scans each of them twice (checking the body, then decoding
// the proof): byte by byte, that scanning was a tenth of its CPU.
package plain

import (
	"encoding/binary"
	"math/bits"
)

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// Run returns the index of the first byte of b at or after i that is not
// plain string content: a quote, a backslash, a control character (below
// 0x20) or a byte of a non-ASCII character (0x80 and above). It returns
// len(b) if there is none.
func Run(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ (ones * '"')
		s := x ^ (ones * '\\')
		// A byte's high bit is set in m if the byte is below 0x20, equal
		// to a quote or a backslash, or not ASCII. Borrows may also flag
		// bytes after the first flagged one, never before it.
		m := ((x-ones*0x20)&^x | (q-ones)&^q | (s-ones)&^s | x) & highs
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return i
		}
	}
	return len(b)
}
