package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice"
)

// stream yields n pseudo-random bytes determined by seed, generated on the
// fly: the test never holds them in memory.
func stream(seed byte, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{seed}), n)
}

// streamCID computes the expected CID string of stream(seed, n)
// independently of the store.
func streamCID(t testing.TB, seed byte, n int64) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, stream(seed, n)); err != nil {
		t.Fatal(err)
	}
	return refEncode([]byte{0x01, 0x55, 0x12, 0x20}, h.Sum(nil))
}

func openStore(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, dir
}

// names lists the entries of dir.
func names(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// assertEmpty fails unless dir/blobs and dir/pending are both empty.
func assertEmpty(t testing.TB, dir string) {
	t.Helper()
	for _, sub := range []string{"blobs", "pending"} {
		if got := names(t, filepath.Join(dir, sub)); len(got) != 0 {
			t.Errorf("%s: got %v, want empty", sub, got)
		}
	}
}

func TestPutOpen(t *testing.T) {
	tests := []struct {
		name string
		size int64
	}{
		{"empty", 0},
		{"one byte", 1},
		{"10 MiB", 10 << 20},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := openStore(t)
			seed := byte(i)
			want := streamCID(t, seed, tt.size)

			c, n, err := s.Put(context.Background(), stream(seed, tt.size), -1)
			if err != nil {
				t.Fatal(err)
			}
			if c.String() != want {
				t.Errorf("CID: got %s, want %s", c, want)
			}
			if n != tt.size {
				t.Errorf("size: got %d, want %d", n, tt.size)
			}
			if !s.Has(c) {
				t.Errorf("Has: got false, want true")
			}

			f, size, err := s.Open(c)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if size != tt.size {
				t.Errorf("Open size: got %d, want %d", size, tt.size)
			}
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil {
				t.Fatal(err)
			}
			if got := refEncode([]byte{0x01, 0x55, 0x12, 0x20}, h.Sum(nil)); got != want {
				t.Errorf("stored content: got CID %s, want %s", got, want)
			}
			if got := names(t, filepath.Join(dir, "pending")); len(got) != 0 {
				t.Errorf("pending after Put: got %v, want empty", got)
			}
			if got := names(t, filepath.Join(dir, "blobs")); len(got) != 1 || got[0] != want {
				t.Errorf("blobs: got %v, want [%s]", got, want)
			}
			if got := s.Path(c); got != filepath.Join(dir, "blobs", want) {
				t.Errorf("Path: got %s, want %s", got, filepath.Join(dir, "blobs", want))
			}
		})
	}
}

// TestPutMemory checks that Put streams: storing 64 MiB allocates a small
// fraction of that.
func TestPutMemory(t *testing.T) {
	const size = 64 << 20
	s, _ := openStore(t)
	src := stream(1, size)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, n, err := s.Put(context.Background(), src, -1)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Fatalf("size: got %d, want %d", n, size)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got >= 8<<20 {
		t.Errorf("allocated during Put of %d bytes: got %d, want < %d", size, got, 8<<20)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestPutLimit(t *testing.T) {
	tests := []struct {
		name        string
		size, limit int64
		tooLarge    bool
	}{
		{"empty at limit 0", 0, 0, false},
		{"one byte over limit 0", 1, 0, true},
		{"at limit", 10, 10, false},
		{"one over", 11, 10, true},
		{"far over", 10 << 20, 1000, true},
		{"over a chunk's worth", 3 << 20, chunkSize + 1, true},
		{"no limit", 1 << 20, -1, false},
		{"max limit", 1 << 20, 1<<63 - 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := openStore(t)
			src := &countingReader{r: stream(2, tt.size)}
			_, n, err := s.Put(context.Background(), src, tt.limit)
			if checkLimited(t, n, err, src.n, tt.size, tt.limit, tt.tooLarge) {
				assertEmpty(t, dir)
			}
		})
	}
}

// checkLimited checks a store call that was given a limit: within it, the
// whole size stored without error; over it, ErrTooLarge after reading at
// most limit+1 bytes. It reports whether the call was over the limit.
func checkLimited(t *testing.T, n int64, err error, read, size, limit int64, tooLarge bool) bool {
	t.Helper()
	if !tooLarge {
		if err != nil {
			t.Fatal(err)
		}
		if n != size {
			t.Errorf("size: got %d, want %d", n, size)
		}
		return false
	}
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if read > limit+1 {
		t.Errorf("bytes read: got %d, want at most %d", read, limit+1)
	}
	return true
}

func TestPutDuplicate(t *testing.T) {
	s, dir := openStore(t)
	data := []byte("the same bytes twice")
	c1, _, err := s.Put(context.Background(), bytes.NewReader(data), -1)
	if err != nil {
		t.Fatal(err)
	}
	c2, n, err := s.Put(context.Background(), bytes.NewReader(data), -1)
	if err != nil {
		t.Fatal(err)
	}
	if c1 != c2 {
		t.Errorf("CID: got %s, want %s", c2, c1)
	}
	if n != int64(len(data)) {
		t.Errorf("size: got %d, want %d", n, len(data))
	}
	if got := names(t, filepath.Join(dir, "blobs")); len(got) != 1 {
		t.Errorf("blobs: got %v, want one", got)
	}
	if got := names(t, filepath.Join(dir, "pending")); len(got) != 0 {
		t.Errorf("pending: got %v, want empty", got)
	}
	got, err := os.ReadFile(s.Path(c1))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("content: got %q, want %q", got, data)
	}
}

// cancellingReader yields endless bytes and cancels its context once it
// has served after bytes.
type cancellingReader struct {
	cancel context.CancelFunc
	after  int64
	n      int64
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n >= c.after {
		c.cancel()
	}
	clear(p)
	c.n += int64(len(p))
	return len(p), nil
}

func TestPutCancel(t *testing.T) {
	t.Run("mid-stream", func(t *testing.T) {
		s, dir := openStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		src := &cancellingReader{cancel: cancel, after: 1 << 20}
		_, _, err := s.Put(ctx, src, -1)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if max := int64(1<<20) + 2*chunkSize; src.n > max {
			t.Errorf("bytes read after cancel: got %d, want at most %d", src.n, max)
		}
		assertEmpty(t, dir)
	})
	t.Run("before start", func(t *testing.T) {
		s, dir := openStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		src := &countingReader{r: stream(3, 1000)}
		_, _, err := s.Put(ctx, src, -1)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if src.n != 0 {
			t.Errorf("bytes read: got %d, want 0", src.n)
		}
		assertEmpty(t, dir)
	})
}

// failingReader yields n bytes then fails.
type failingReader struct{ n int }

var errBroken = errors.New("connection reset")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errBroken
	}
	k := min(len(p), f.n)
	clear(p[:k])
	f.n -= k
	return k, nil
}

func TestPutReadError(t *testing.T) {
	s, dir := openStore(t)
	_, _, err := s.Put(context.Background(), &failingReader{n: 100000}, -1)
	if !errors.Is(err, errBroken) {
		t.Fatalf("got %v, want %v", err, errBroken)
	}
	assertEmpty(t, dir)
}

func TestOpenCleansTmp(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := s.Put(context.Background(), bytes.NewReader([]byte("kept")), -1)
	if err != nil {
		t.Fatal(err)
	}
	// Leftovers of a crash mid-upload, from a version that wrote Puts there.
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "put-123"), []byte("half an upload"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tmp, "odd", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("tmp after Open: %v, want it gone", err)
	}
	if !s.Has(c) {
		t.Errorf("Has(%s) after reopen: got false, want true", c)
	}
}

func TestMissing(t *testing.T) {
	s, _ := openStore(t)
	c := Sum([]byte("never stored"))
	if _, _, err := s.Open(c); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open: got %v, want ErrNotFound", err)
	}
	if s.Has(c) {
		t.Errorf("Has: got true, want false")
	}
	if err := s.Remove(c); err != nil {
		t.Errorf("Remove: got %v, want nil", err)
	}
}

func TestRemove(t *testing.T) {
	s, _ := openStore(t)
	c, _, err := s.Put(context.Background(), bytes.NewReader([]byte("gone soon")), -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(c); err != nil {
		t.Fatal(err)
	}
	if s.Has(c) {
		t.Errorf("Has after Remove: got true, want false")
	}
}

func TestList(t *testing.T) {
	s, dir := openStore(t)
	want := map[CID]bool{}
	for i := range 3 {
		c, _, err := s.Put(context.Background(), stream(byte(i), 100), -1)
		if err != nil {
			t.Fatal(err)
		}
		want[c] = true
	}
	// Strays are skipped.
	if err := os.WriteFile(filepath.Join(dir, "blobs", "README"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "blobs", Sum(nil).String()), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("List: got %v, want %d CIDs", got, len(want))
	}
	for i, c := range got {
		if !want[c] {
			t.Errorf("List: got unexpected %s", c)
		}
		if i > 0 && got[i-1].String() >= c.String() {
			t.Errorf("List: got %s before %s, want sorted", got[i-1], c)
		}
	}
}

// put stores data or fails the test.
func put(t testing.TB, s *Store, data string) CID {
	t.Helper()
	c, _, err := s.Put(context.Background(), bytes.NewReader([]byte(data)), -1)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sleepCheck sleeps d in the bubble, lets the timers' goroutines finish,
// then checks whether c is stored.
func sleepCheck(t *testing.T, s *Store, d time.Duration, c CID, want bool) {
	t.Helper()
	time.Sleep(d)
	synctest.Wait()
	if got := s.Has(c); got != want {
		t.Errorf("Has at %s: got %v, want %v", time.Now().UTC().Format(time.TimeOnly), got, want)
	}
}

func TestRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := openStore(t)
		c := put(t, s, "retained for an hour")
		s.Release(c, time.Hour)
		sleepCheck(t, s, time.Hour-time.Nanosecond, c, true)
		sleepCheck(t, s, time.Nanosecond, c, false)
		if n := len(s.releases); n != 0 {
			t.Errorf("pending releases: got %d, want 0", n)
		}
	})
}

func TestReleaseReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := openStore(t)
		c := put(t, s, "released twice")
		s.Release(c, time.Hour)
		s.Release(c, 3*time.Hour) // the later release wins
		sleepCheck(t, s, 2*time.Hour, c, true)
		sleepCheck(t, s, time.Hour, c, false)
	})
}

func TestKeepCancelsRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := openStore(t)
		c := put(t, s, "needed again")
		s.Release(c, time.Hour)
		sleepCheck(t, s, 30*time.Minute, c, true)
		s.Keep(c)
		sleepCheck(t, s, 2*time.Hour, c, true)
		if n := len(s.releases); n != 0 {
			t.Errorf("pending releases after Keep: got %d, want 0", n)
		}
		s.Keep(c) // nothing pending: nothing happens
		sleepCheck(t, s, time.Hour, c, true)
	})
}

func TestPutCancelsRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := openStore(t)
		c := put(t, s, "uploaded again")
		s.Release(c, time.Hour)
		sleepCheck(t, s, 30*time.Minute, c, true)
		put(t, s, "uploaded again")
		sleepCheck(t, s, 2*time.Hour, c, true)
		if n := len(s.releases); n != 0 {
			t.Errorf("pending releases: got %d, want 0", n)
		}
	})
}

func TestRemoveCancelsRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := openStore(t)
		c := put(t, s, "removed early")
		s.Release(c, time.Hour)
		if err := s.Remove(c); err != nil {
			t.Fatal(err)
		}
		if n := len(s.releases); n != 0 {
			t.Errorf("pending releases: got %d, want 0", n)
		}
	})
}

func TestCloseCancelsReleases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := openStore(t)
		a := put(t, s, "a")
		b := put(t, s, "b")
		s.Release(a, time.Hour)
		s.Release(b, 2*time.Hour)
		sleepCheck(t, s, 30*time.Minute, a, true)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if n := len(s.releases); n != 0 {
			t.Errorf("pending releases after Close: got %d, want 0", n)
		}
		s.Release(a, time.Minute) // after Close: nothing
		sleepCheck(t, s, 3*time.Hour, a, true)
		if !s.Has(b) {
			t.Errorf("Has(b): got false, want true")
		}
	})
}

// TestErrorKinds checks that the store's errors carry the domain kinds the
// HTTP layer maps to status codes.
func TestErrorKinds(t *testing.T) {
	s, _ := openStore(t)
	if _, _, err := s.Open(Sum([]byte("absent"))); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("Open of a missing blob: got %v, want kind sluice.ErrNotFound", err)
	}
	if _, err := ParseCID("Qm"); !errors.Is(err, sluice.ErrInvalid) {
		t.Errorf("ParseCID: got %v, want kind sluice.ErrInvalid", err)
	}
}

// TestConcurrent races Puts of the same and of different content with
// Release, Remove, Open and List; run it with -race. Whatever the
// interleaving, no operation fails and tmp ends empty.
func TestConcurrent(t *testing.T) {
	s, dir := openStore(t)
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range 20 {
				seed := byte(i % 3) // shared content across workers
				if w%2 == 1 {
					seed = byte(100 + w) // own content
				}
				c, _, err := s.Put(context.Background(), stream(seed, 300<<10), -1)
				if err != nil {
					t.Error(err)
					return
				}
				switch i % 4 {
				case 0:
					s.Release(c, time.Millisecond)
				case 1:
					if err := s.Remove(c); err != nil {
						t.Error(err)
					}
				case 2:
					if f, _, err := s.Open(c); err == nil {
						_ = f.Close()
					} else if !errors.Is(err, ErrNotFound) {
						t.Error(err)
					}
				case 3:
					if _, err := s.List(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if got := names(t, filepath.Join(dir, "pending")); len(got) != 0 {
		t.Errorf("pending: got %v, want empty", got)
	}
}
