package blobstore

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWritebackFile writes through a writebackFile in uneven pieces: the
// file gets exactly the bytes written, and write-out was started for all
// but the last writebackEvery bytes.
func TestWritebackFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := &writebackFile{f: f}
	var want bytes.Buffer
	src := stream(6, 3*writebackEvery+12345)
	buf := make([]byte, 300_001)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				t.Fatal(werr)
			}
			want.Write(buf[:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if w.written != int64(want.Len()) {
		t.Errorf("written: got %d, want %d", w.written, want.Len())
	}
	if w.written-w.started >= writebackEvery || w.started == 0 {
		t.Errorf("write-out started for %d of %d bytes, want all but less than %d", w.started, w.written, writebackEvery)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("file: got %d bytes, want the %d written", len(got), want.Len())
	}
}
