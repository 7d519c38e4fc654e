package blobstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
)

// raggedReader passes r on in reads of pseudo-random lengths from 1 to
// 100,000 bytes, as a network connection might: a chunk is then filled by
// many reads that do not line up with its end.
type raggedReader struct {
	r   io.Reader
	rng *rand.Rand
}

func ragged(r io.Reader, seed uint64) *raggedReader {
	return &raggedReader{r: r, rng: rand.New(rand.NewPCG(seed, 1))}
}

func (r *raggedReader) Read(p []byte) (int, error) {
	if n := 1 + r.rng.IntN(100_000); n < len(p) {
		p = p[:n]
	}
	return r.r.Read(p)
}

// fileCID hashes a stored file independently of the store.
func fileCID(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return refEncode([]byte{0x01, 0x55, 0x12, 0x20}, h.Sum(nil))
}

// manyChunks makes sizes of several chunks.
const manyChunks = 8

// TestPutChunkBoundaries stores files whose sizes sit on and around the
// chunk boundaries (one chunk, several, the write-out interval), read whole and in ragged pieces, and checks the CID
// against an independent hash of the source and of the stored file.
func TestPutChunkBoundaries(t *testing.T) {
	sizes := []int64{
		0, 1,
		chunkSize - 1, chunkSize, chunkSize + 1,
		chunkSize*manyChunks - 1, chunkSize * manyChunks, chunkSize*manyChunks + 1,
		writebackEvery + chunkSize + 7,
		40<<20 + 3,
	}
	for i, size := range sizes {
		for _, rag := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d ragged=%v", size, rag), func(t *testing.T) {
				s, dir := openStore(t)
				seed := byte(10 + i)
				want := streamCID(t, seed, size)
				src := stream(seed, size)
				if rag {
					src = ragged(src, uint64(i))
				}
				c, n, err := s.Put(context.Background(), src, -1)
				if err != nil {
					t.Fatal(err)
				}
				if c.String() != want {
					t.Errorf("CID: got %s, want %s", c, want)
				}
				if n != size {
					t.Errorf("size: got %d, want %d", n, size)
				}
				if got := fileCID(t, s.Path(c)); got != want {
					t.Errorf("stored content: got CID %s, want %s", got, want)
				}
				if fi, err := os.Stat(s.Path(c)); err != nil || fi.Size() != size {
					t.Errorf("stored size: got %v (%v), want %d", fi.Size(), err, size)
				}
				if got := names(t, filepath.Join(dir, "pending")); len(got) != 0 {
					t.Errorf("pending after Put: got %v, want empty", got)
				}
			})
		}
	}
}

// TestPutFailsMidStream breaks the source at points around the chunk
// boundaries. Put fails with the source's error, stores nothing, and
// leaves no goroutine behind (synctest.Test fails on one left blocked).
func TestPutFailsMidStream(t *testing.T) {
	for _, at := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 2*chunkSize*manyChunks + 5} {
		for _, rag := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d ragged=%v", at, rag), func(t *testing.T) {
				s, dir := openStore(t)
				synctest.Test(t, func(t *testing.T) {
					var src io.Reader = &failingReader{n: at}
					if rag {
						src = ragged(src, uint64(at))
					}
					_, _, err := s.Put(context.Background(), src, -1)
					if !errors.Is(err, errBroken) {
						t.Fatalf("got %v, want %v", err, errBroken)
					}
				})
				assertEmpty(t, dir)
			})
		}
	}
}

// TestPutLimitChunks passes the limit at and around chunk boundaries, with
// whole and ragged reads: more bytes than the limit is ErrTooLarge,
// nothing is stored, and at most limit+1 bytes were read.
func TestPutLimitChunks(t *testing.T) {
	tests := []struct {
		size, limit int64
		tooLarge    bool
	}{
		{chunkSize, chunkSize, false},
		{chunkSize + 1, chunkSize, true},
		{chunkSize, chunkSize - 1, true},
		{chunkSize * manyChunks, chunkSize * manyChunks, false},
		{chunkSize*manyChunks + 1, chunkSize * manyChunks, true},
		{3 * chunkSize * manyChunks, 2*chunkSize*manyChunks + 1, true},
	}
	for _, tt := range tests {
		for _, rag := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d limit %d ragged=%v", tt.size, tt.limit, rag), func(t *testing.T) {
				s, dir := openStore(t)
				counted := &countingReader{r: stream(4, tt.size)}
				var src io.Reader = counted
				if rag {
					src = ragged(src, uint64(tt.size))
				}
				synctest.Test(t, func(t *testing.T) {
					_, n, err := s.Put(context.Background(), src, tt.limit)
					checkLimited(t, n, err, counted.n, tt.size, tt.limit, tt.tooLarge)
				})
				if tt.tooLarge {
					assertEmpty(t, dir)
				}
			})
		}
	}
}

// failingWriter accepts n bytes, then fails.
type failingWriter struct{ n int }

var errDiskFull = errors.New("no space left on device")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

// TestCopyLimitWriteError fails the destination after a few chunks: the
// copy stops with the writer's error.
func TestCopyLimitWriteError(t *testing.T) {
	for _, at := range []int{0, chunkSize - 1, 3*chunkSize + 5} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			src := &countingReader{r: stream(5, 4*chunkSize*manyChunks)}
			_, err := copyLimit(context.Background(), &failingWriter{n: at}, src, -1)
			if !errors.Is(err, errDiskFull) {
				t.Fatalf("got %v, want %v", err, errDiskFull)
			}
			// Reading stops with the failed chunk.
			if max := int64(at) + chunkSize; src.n > max {
				t.Errorf("bytes read: got %d, want at most %d", src.n, max)
			}
		})
	}
}
