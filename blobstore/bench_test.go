package blobstore

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchSize is the file both benchmarks write.
const benchSize = 256 << 20

// repeatReader yields n bytes cycling through block, without allocating
// and at memory speed, so both benchmarks measure the disk side only.
type repeatReader struct {
	block []byte
	off   int
	n     int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	k := copy(p, r.block[r.off:])
	r.off = (r.off + k) % len(r.block)
	r.n -= int64(k)
	return k, nil
}

func benchBlock() []byte {
	b := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{9}).Read(b)
	return b
}

// BenchmarkPut256MiB stores a 256 MiB stream: hash, write, fsync, rename,
// fsync of the directory. Compare its MB/s with BenchmarkWriteFileBaseline.
func BenchmarkPut256MiB(b *testing.B) {
	s, _ := openStore(b)
	block := benchBlock()
	b.SetBytes(benchSize)
	for b.Loop() {
		c, _, err := s.Put(context.Background(), &repeatReader{block: block, n: benchSize}, -1)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Remove(c); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkWriteFileBaseline writes the same bytes through a buffer of the
// same size into a plain file and fsyncs it: the floor Put is measured
// against.
func BenchmarkWriteFileBaseline(b *testing.B) {
	name := filepath.Join(b.TempDir(), "baseline")
	block := benchBlock()
	buf := make([]byte, chunkSize)
	b.SetBytes(benchSize)
	for b.Loop() {
		f, err := os.Create(name)
		if err != nil {
			b.Fatal(err)
		}
		// Hide ReadFrom so the copy goes through buf, as in Put.
		if _, err := io.CopyBuffer(struct{ io.Writer }{f}, &repeatReader{block: block, n: benchSize}, buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.Remove(name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
