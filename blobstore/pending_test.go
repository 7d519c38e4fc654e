package blobstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice"
)

// TestStageSeal stages files of several sizes, seals them and discards the
// pending names: the blob has the CID of the bytes and the bytes, sealing
// twice is harmless, and a discarded pending file cannot be sealed again.
func TestStageSeal(t *testing.T) {
	for _, size := range []int64{0, 1, chunkSize, 10<<20 + 12345} {
		s, dir := openStore(t)
		ctx := context.Background()
		id, n, err := s.Stage(ctx, stream(3, size), -1)
		if err != nil {
			t.Fatal(err)
		}
		if n != size {
			t.Fatalf("size: got %d, want %d", n, size)
		}
		if got := names(t, filepath.Join(dir, "pending")); !slices.Equal(got, []string{id}) {
			t.Fatalf("pending after Stage: got %v, want [%s]", got, id)
		}
		if got := names(t, filepath.Join(dir, "blobs")); len(got) != 0 {
			t.Fatalf("blobs after Stage: got %v, want none before Seal", got)
		}
		c, err := s.Seal(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := streamCID(t, 3, size); c.String() != want {
			t.Fatalf("size %d: got CID %s, want %s", size, c, want)
		}
		if again, err := s.Seal(ctx, id); err != nil || again != c {
			t.Fatalf("second Seal: got %s, %v, want %s, nil", again, err, c)
		}
		if err := s.Discard(id); err != nil {
			t.Fatal(err)
		}
		if err := s.Discard(id); err != nil {
			t.Fatalf("second Discard: got %v, want nil", err)
		}
		if got := names(t, filepath.Join(dir, "pending")); len(got) != 0 {
			t.Fatalf("pending after Discard: got %v, want empty", got)
		}
		f, m, err := s.Open(c)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		_, _ = got.ReadFrom(f)
		f.Close()
		var want bytes.Buffer
		_, _ = want.ReadFrom(stream(3, size))
		if m != size || !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("blob: got %d bytes, want the %d staged", m, size)
		}
		if _, err := s.Seal(ctx, id); !errors.Is(err, sluice.ErrNotFound) {
			t.Fatalf("Seal after Discard: got %v, want ErrNotFound", err)
		}
	}
}

// TestStageLimit: more bytes than the limit is ErrTooLarge, at most one
// byte beyond the limit is read, and nothing is kept.
func TestStageLimit(t *testing.T) {
	for _, tt := range []struct {
		name        string
		size, limit int64
		tooLarge    bool
	}{
		{"empty at limit 0", 0, 0, false},
		{"one byte over limit 0", 1, 0, true},
		{"at limit", 10, 10, false},
		{"one over", 11, 10, true},
		{"over a chunk's worth", 3 << 20, chunkSize + 1, true},
		{"max limit", 1 << 20, 1<<63 - 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := openStore(t)
			src := &countingReader{r: stream(2, tt.size)}
			_, n, err := s.Stage(context.Background(), src, tt.limit)
			if !checkLimited(t, n, err, src.n, tt.size, tt.limit, tt.tooLarge) {
				return
			}
			if got := names(t, filepath.Join(dir, "pending")); len(got) != 0 {
				t.Errorf("pending: got %v, want empty", got)
			}
		})
	}
}

// TestStageFailures: a read error or a cancelled context keeps nothing.
func TestStageFailures(t *testing.T) {
	s, dir := openStore(t)
	if _, _, err := s.Stage(context.Background(), &failingReader{n: 3 * chunkSize / 2}, -1); !errors.Is(err, errBroken) {
		t.Fatalf("read error: got %v, want %v", err, errBroken)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Stage(ctx, stream(1, 100), -1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got %v, want context.Canceled", err)
	}
	if got := names(t, filepath.Join(dir, "pending")); len(got) != 0 {
		t.Errorf("pending: got %v, want empty", got)
	}
}

// TestStageSealMemory: staging and sealing 64 MiB allocates a small
// fraction of that.
func TestStageSealMemory(t *testing.T) {
	const size = 64 << 20
	s, _ := openStore(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	id, _, err := s.Stage(context.Background(), stream(1, size), -1)
	if err == nil {
		_, err = s.Seal(context.Background(), id)
	}
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got >= 4<<20 {
		t.Errorf("allocated during Stage and Seal of %d bytes: got %d, want < %d", size, got, 4<<20)
	}
}

// TestSweepPending reopens a store as after a crash: its pending files are
// all still there; the sweep removes those not kept, never one staged
// since Open, and a second sweep removes nothing.
func TestSweepPending(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	acked, _, err := s.Stage(ctx, bytes.NewReader([]byte("acknowledged")), -1)
	if err != nil {
		t.Fatal(err)
	}
	orphan, _, err := s.Stage(ctx, bytes.NewReader([]byte("never acknowledged")), -1)
	if err != nil {
		t.Fatal(err)
	}
	// A file cut short by a crash in the middle of Stage, and a stray.
	partial := "0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(filepath.Join(dir, "pending", partial), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pending", "not-an-id"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(dir) // no Close: a crash
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, _ := s2.Pending()
	slices.Sort(got)
	want := []string{acked, orphan, partial}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("pending after reopen: got %v, want %v", got, want)
	}
	fresh, _, err := s2.Stage(ctx, bytes.NewReader([]byte("staged after Open")), -1)
	if err != nil {
		t.Fatal(err)
	}
	removed, err := s2.SweepPending(func(id string) bool { return id == acked })
	if err != nil || removed != 2 {
		t.Fatalf("sweep: got %d, %v, want 2, nil", removed, err)
	}
	got, _ = s2.Pending()
	slices.Sort(got)
	want = []string{acked, fresh}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("pending after sweep: got %v, want %v", got, want)
	}
	if removed, err := s2.SweepPending(func(string) bool { return false }); err != nil || removed != 0 {
		t.Fatalf("second sweep: got %d, %v, want 0, nil", removed, err)
	}
	if c, err := s2.Seal(ctx, acked); err != nil || c != Sum([]byte("acknowledged")) {
		t.Fatalf("seal after reopen: got %s, %v", c, err)
	}
}

// TestSealDuplicateCancelsRelease: sealing bytes the store holds as a blob
// whose release is pending keeps the blob.
func TestSealDuplicateCancelsRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := openStore(t)
		c := put(t, s, "twice")
		s.Release(c, time.Minute)
		id, _, err := s.Stage(context.Background(), bytes.NewReader([]byte("twice")), -1)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Seal(context.Background(), id); err != nil || got != c {
			t.Fatalf("seal: got %s, %v, want %s, nil", got, err, c)
		}
		sleepCheck(t, s, 2*time.Minute, c, true)
	})
}

// TestPendingIDs: ids Stage would not make are refused as invalid input.
func TestPendingIDs(t *testing.T) {
	s, _ := openStore(t)
	for _, id := range []string{"", "../blobs/x", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde"} {
		if _, err := s.Seal(context.Background(), id); !errors.Is(err, ErrInvalidPending) || !errors.Is(err, sluice.ErrInvalid) {
			t.Errorf("Seal(%q): got %v, want ErrInvalidPending", id, err)
		}
		if err := s.Discard(id); !errors.Is(err, ErrInvalidPending) {
			t.Errorf("Discard(%q): got %v, want ErrInvalidPending", id, err)
		}
	}
}
