package embedded_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/persistence/embedded"
	"github.com/sluicehq/sluice/persistence/storetest"
)

func open(t *testing.T, dir string) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(dir, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() storetest.Store {
		dir := t.TempDir()
		return func() storetest.Store { return open(t, dir) }
	})
}

func TestOpenCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s := open(t, dir)
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, embedded.FileName)); err != nil {
		t.Errorf("database file: %v", err)
	}
}

// TestOpenLockedDir checks that a second opener gets a clear error instead
// of hanging. flock locks conflict between two opens in one process too; the
// bubble's fake clock makes bbolt's two-second retry loop instant.
func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	synctest.Test(t, func(t *testing.T) {
		second, err := embedded.Open(dir, nil)
		if err == nil {
			second.Close()
			t.Fatal("second Open: got nil error, want the directory to be locked")
		}
		if !strings.Contains(err.Error(), "in use by another sluice process") {
			t.Errorf("second Open: got %q, want it to say the dir is in use", err)
		}
	})
}

func TestClosedIsUnavailable(t *testing.T) {
	s := open(t, t.TempDir())
	s.Close()
	ctx := context.Background()
	err := s.Write(ctx, []sluice.Record{{Kind: sluice.KindToken, ID: "t", Version: 1, Live: true}})
	if !errors.Is(err, sluice.ErrUnavailable) {
		t.Errorf("Write after Close: got %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, sluice.KindToken, "t"); !errors.Is(err, sluice.ErrUnavailable) {
		t.Errorf("Get after Close: got %v, want ErrUnavailable", err)
	}
}
