package farmer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/proof"
)

func TestVerifyChunk(t *testing.T) {
	good, data := seededItem(t, "0123456789abcdef0123456789abcdef", 10*1024+17)
	other, _ := seededItem(t, "ffffffffffffffffffffffffffffffff", 10*1024+17)

	tests := []struct {
		name  string
		item  func(ChunkItem) ChunkItem
		bytes []byte
		ok    bool
	}{
		{"correct", func(it ChunkItem) ChunkItem { return it }, data, true},
		{"wrong hash", func(it ChunkItem) ChunkItem { it.FileHash[0] ^= 1; return it }, data, false},
		{"wrong root", func(it ChunkItem) ChunkItem { it.Tag.Root = other.Tag.Root; return it }, data, false},
		{"item size differs from tag", func(it ChunkItem) ChunkItem { it.Size--; return it }, data, false},
		{"tag size differs from bytes", func(it ChunkItem) ChunkItem { it.Size--; it.Tag.Size--; return it }, data, false},
		{"short stream", func(it ChunkItem) ChunkItem { return it }, data[:len(data)-1], false},
		{"long stream", func(it ChunkItem) ChunkItem { return it }, append(bytes.Clone(data), 0), false},
		{"flipped byte", func(it ChunkItem) ChunkItem { return it }, flip(data, 5000), false},
		{"both seed and url", func(it ChunkItem) ChunkItem { it.URL = "/x"; return it }, data, false},
		{"neither seed nor url", func(it ChunkItem) ChunkItem { it.Seed = ""; return it }, data, false},
		{"invalid tag", func(it ChunkItem) ChunkItem { it.Tag.LeafSize = 0; return it }, data, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item := tt.item(good)
			err := VerifyChunk(bytes.NewReader(tt.bytes), item)
			if tt.ok && err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrChunkMismatch) {
				t.Fatalf("got %v, want ErrChunkMismatch", err)
			}

			dir := t.TempDir()
			path := filepath.Join(dir, item.FileHash.String())
			err = WriteChunk(path, bytes.NewReader(tt.bytes), item)
			if (err == nil) != tt.ok {
				t.Fatalf("WriteChunk: got %v, want ok=%v", err, tt.ok)
			}
			entries, _ := os.ReadDir(dir)
			if tt.ok {
				got, _ := os.ReadFile(path)
				if !bytes.Equal(got, tt.bytes) || len(entries) != 1 {
					t.Fatalf("got %d bytes in %d files, want the chunk alone", len(got), len(entries))
				}
			} else if len(entries) != 0 {
				t.Fatalf("got %d files left after a refused chunk, want 0", len(entries))
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x80
	return b
}

func TestProveChunk(t *testing.T) {
	for _, size := range []int64{1, 1023, 1024, 1025, 33 * 1024, 100*1024 + 3} {
		item, data := seededItem(t, "prove", size)
		path := filepath.Join(t.TempDir(), item.FileHash.String())
		if err := WriteChunk(path, bytes.NewReader(data), item); err != nil {
			t.Fatalf("size %d: WriteChunk: %v", size, err)
		}
		p, err := ProveChunk(path, item.Tag, item.Challenge)
		if err != nil {
			t.Fatalf("size %d: ProveChunk: %v", size, err)
		}
		if err := proof.Verify(item.Tag, item.Challenge, p); err != nil {
			t.Fatalf("size %d: Verify: got %v, want nil", size, err)
		}
		p, err = ProveReader(proof.NewSeeded(item.Seed, size), item.Tag, item.Challenge)
		if err != nil {
			t.Fatalf("size %d: ProveReader: %v", size, err)
		}
		if err := proof.Verify(item.Tag, item.Challenge, p); err != nil {
			t.Fatalf("size %d: Verify ProveReader: got %v, want nil", size, err)
		}
	}
}

func TestProveChunkDetectsDamage(t *testing.T) {
	item, data := seededItem(t, "damage", 8*1024)
	path := filepath.Join(t.TempDir(), item.FileHash.String())
	if err := os.WriteFile(path, flip(data, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ProveChunk(path, item.Tag, item.Challenge); !errors.Is(err, ErrChunkMismatch) {
		t.Fatalf("damaged chunk: got %v, want ErrChunkMismatch", err)
	}
	if err := os.WriteFile(path, data[:len(data)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ProveChunk(path, item.Tag, item.Challenge); !errors.Is(err, ErrChunkMismatch) {
		t.Fatalf("truncated chunk: got %v, want ErrChunkMismatch", err)
	}

	// A cached tree catches a leaf changed after it was built.
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, tree, err := proveFile(path, item.Tag, item.Challenge, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := int(item.Challenge.Indices[0]) * 1024
	if err := os.WriteFile(path, flip(data, idx), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := proveFile(path, item.Tag, item.Challenge, tree); err == nil {
		t.Fatal("cached tree over a changed leaf: got nil, want an error")
	}
}

func TestTagFile(t *testing.T) {
	item, data := seededItem(t, "tagfile", 5*1024+1)
	path := filepath.Join(t.TempDir(), item.FileHash.String())
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tag, err := TagFile(path, item.FileHash, 1024)
	if err != nil || tag != item.Tag {
		t.Fatalf("got %+v, %v, want %+v", tag, err, item.Tag)
	}
	wrong := item.FileHash
	wrong[31] ^= 1
	if _, err := TagFile(path, wrong, 1024); !errors.Is(err, ErrChunkMismatch) {
		t.Fatalf("wrong hash: got %v, want ErrChunkMismatch", err)
	}
}
