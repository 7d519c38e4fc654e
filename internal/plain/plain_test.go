package plain

import (
	"math/rand/v2"
	"testing"
)

func naive(b []byte, i int) int {
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return i
		}
	}
	return len(b)
}

// Every byte value, at every offset of a word and after every other
// special byte, is found where a byte-by-byte scan finds it.
func TestRunMatchesByteScan(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := range 40 {
		for c := range 256 {
			for pos := range n {
				b := make([]byte, n)
				for k := range b {
					b[k] = 'A' + byte(r.IntN(26))
				}
				b[pos] = byte(c)
				if pos+1 < n && r.IntN(2) == 0 {
					b[pos+1] = byte(r.IntN(256)) // a borrow source after it
				}
				for start := range min(n, 9) {
					if got, want := Run(b, start), naive(b, start); got != want {
						t.Fatalf("Run(%q, %d) = %d, want %d", b, start, got, want)
					}
				}
			}
		}
	}
}

func FuzzRun(f *testing.F) {
	f.Add([]byte(`abcdefgh"ijk\l`), 0)
	f.Add([]byte("\x00\x1f\x20\x7f\x80\xff"), 1)
	f.Fuzz(func(t *testing.T, b []byte, start int) {
		if start < 0 || start > len(b) {
			return
		}
		if got, want := Run(b, start), naive(b, start); got != want {
			t.Fatalf("Run(%q, %d) = %d, want %d", b, start, got, want)
		}
	})
}

func BenchmarkRun(b *testing.B) {
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = 'A' + byte(i%26)
	}
	b.SetBytes(int64(len(buf)))
	b.Run("words", func(b *testing.B) {
		for b.Loop() {
			Run(buf, 0)
		}
	})
	b.Run("bytes", func(b *testing.B) {
		for b.Loop() {
			naive(buf, 0)
		}
	})
}
