package proof

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"testing"
)

func TestSeededVectors(t *testing.T) {
	tests := []struct {
		seed string
		want string
	}{
		{"seed1", "09b0efd90570e157178a39c6213b5e361dad6ab4236e1d2f122be6b180c8360649c4218b333984451d14df146512faf00d1b"},
		{"123456", "18b2ce8a20c9e26ed9f6060b38f9b9f89b2338317af802831ea2f0327fadd72a68ad39f61455ca905c69cc7e2368aab41b5b"},
	}
	for _, tt := range tests {
		s := NewSeeded(tt.seed, 50)
		got, err := io.ReadAll(s.NewReader())
		if err != nil {
			t.Fatalf("%s: reading: %v", tt.seed, err)
		}
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("%s: sequential got %x, want %s", tt.seed, got, tt.want)
		}
		at := make([]byte, 50)
		if n, err := s.ReadAt(at, 0); n != 50 || err != nil {
			t.Fatalf("%s: ReadAt got %d, %v, want 50, nil", tt.seed, n, err)
		}
		if hex.EncodeToString(at) != tt.want {
			t.Errorf("%s: ReadAt got %x, want %s", tt.seed, at, tt.want)
		}
	}
}

func TestSeededReadAtMatchesStream(t *testing.T) {
	const size = 5000
	s := NewSeeded("0123456789abcdef0123456789abcdef", size)
	whole, err := io.ReadAll(s.NewReader())
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) != size {
		t.Fatalf("got %d bytes, want %d", len(whole), size)
	}
	tests := []struct{ off, n int }{
		{0, 1}, {1, 15}, {7, 16}, {15, 2}, {16, 16}, {17, 33}, {31, 1},
		{1000, 1024}, {1023, 1}, {4095, 17}, {4999, 1}, {3, 4997},
	}
	for _, tt := range tests {
		got := make([]byte, tt.n)
		n, err := s.ReadAt(got, int64(tt.off))
		if n != tt.n || err != nil {
			t.Errorf("ReadAt(%d, %d): got %d, %v, want %d, nil", tt.n, tt.off, n, err, tt.n)
			continue
		}
		if want := whole[tt.off : tt.off+tt.n]; !bytes.Equal(got, want) {
			t.Errorf("ReadAt(%d, %d): got %x, want %x", tt.n, tt.off, got, want)
		}
	}
}

func TestSeededClamps(t *testing.T) {
	s := NewSeeded("seed1", 40)
	buf := make([]byte, 16)
	n, err := s.ReadAt(buf, 30)
	if n != 10 || !errors.Is(err, io.EOF) {
		t.Errorf("ReadAt across the end: got %d, %v, want 10, EOF", n, err)
	}
	if n, err := s.ReadAt(buf, 40); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("ReadAt at the end: got %d, %v, want 0, EOF", n, err)
	}
	if _, err := s.ReadAt(buf, -1); err == nil {
		t.Errorf("ReadAt at -1: got nil error, want an error")
	}
	// Reads of odd sizes through the sequential reader add up to Size.
	r := s.NewReader()
	var total int
	for {
		n, err := r.Read(make([]byte, 7))
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != 40 {
		t.Errorf("sequential total: got %d, want 40", total)
	}
	if got := NewSeeded("x", -5).Size(); got != 0 {
		t.Errorf("negative size: got %d, want 0", got)
	}
}
